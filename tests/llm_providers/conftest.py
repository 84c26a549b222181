"""Fixtures for the provider tests: no real waiting, fake keys, configs per provider."""

import pytest
from pytest_httpserver import HTTPServer

from llm_providers.transport import asend, send, sessions
from tests.factories import ProviderConfigFactory
from tests.support.processes import closed_port_url  # noqa: F401 (re-exported for the tests here)

OPENAI_KEY = "sk-test-fake-key-0001"
ANTHROPIC_KEY = "sk-ant-test-fake-key-0002"
GROQ_KEY = "gsk_test_fake_key_0003"
LOCAL_KEY = "local-test-fake-key-0004"


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    """Every wait the retry logic asks for, in seconds, on either transport; nothing
    really sleeps."""
    recorded: list[float] = []

    async def arecord(seconds):
        recorded.append(seconds)

    monkeypatch.setattr(send, "sleep", recorded.append)
    monkeypatch.setattr(asend, "asleep", arecord)
    return recorded


@pytest.fixture(autouse=True)
def _fresh_sessions():
    yield
    sessions.close_sessions()


@pytest.fixture
def openai_config(tenant):
    return ProviderConfigFactory(
        tenant=tenant, provider="openai", default_model="gpt-4o-mini", api_key=OPENAI_KEY
    )


@pytest.fixture
def anthropic_config(tenant):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="anthropic",
        default_model="claude-sonnet-4-5",
        api_key=ANTHROPIC_KEY,
    )


@pytest.fixture
def groq_config(tenant):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="groq",
        default_model="llama-3.3-70b-versatile",
        api_key=GROQ_KEY,
    )


@pytest.fixture
def local_config_for(tenant):
    """A local config pointed at `base_url` (an httpserver URL), with or without a key."""

    def make(base_url, *, api_key="", model="gemma-3-270m", metadata=None):
        return ProviderConfigFactory(
            tenant=tenant,
            provider="local",
            default_model=model,
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            metadata=metadata or {},
        )

    return make


def openai_reply(content="Hello there.", *, model="gpt-4o-mini-2024-07-18", usage=None):
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1764300000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    }


# -- local servers for validation, /healthz, the command and the admin ------------------


@pytest.fixture(scope="session")
def _threaded_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(_threaded_server):
    """A local OpenAI-compatible server that can answer several requests at once."""
    _threaded_server.clear()
    yield _threaded_server
    _threaded_server.clear()


def base_url(server) -> str:
    return server.url_for("/v1")
