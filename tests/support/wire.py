"""What the provider tests put on and expect from the wire: fake keys, a real OpenAI reply,
a local server's base URL. Imported by the tests (not from a conftest.py, which pytest
advises against)."""

from tests.support.processes import closed_port_url

__all__ = [
    "ANTHROPIC_KEY",
    "GROQ_KEY",
    "LOCAL_KEY",
    "OPENAI_KEY",
    "base_url",
    "closed_port_url",
    "openai_reply",
]

# Obviously fake provider keys: they must never appear in a response, log or row.
OPENAI_KEY = "sk-test-fake-key-0001"
ANTHROPIC_KEY = "sk-ant-test-fake-key-0002"
GROQ_KEY = "gsk_test_fake_key_0003"
LOCAL_KEY = "local-test-fake-key-0004"


def base_url(server) -> str:
    """The OpenAI-style base URL (`…/v1`) of a pytest-httpserver server."""
    return server.url_for("/v1")


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
