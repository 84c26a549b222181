"""Fixtures for the provider tests: no real waiting, fake keys, configs per provider."""

import pytest
import responses
from django.core.cache import cache
from pytest_httpserver import HTTPServer

from llm_providers.transport import asend, send, sessions
from tests.factories import ProviderConfigFactory
from tests.support.wire import ANTHROPIC_KEY, GROQ_KEY, OPENAI_KEY


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and validation state live in the cache: every test starts
    without any, whatever ran before it (a fixture here, not imported by each module)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_network():
    """Any outgoing HTTP request fails the test (no URL is registered)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        # Inside the block: leaving it resets the recorded calls.
        assert len(mock.calls) == 0, "a request was sent to a provider"


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
