"""Helpers shared by the REST API tests (test_api_*.py)."""

import json
from dataclasses import dataclass, field

import pytest
import responses
from django.core.cache import cache

# Obviously fake provider keys: they must never appear in a response body.
FAKE_KEY = "sk-test-fake-key-0001"
OTHER_FAKE_KEY = "sk-test-fake-key-0002"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache; every test starts without any."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_network():
    """Any outgoing HTTP request fails the test (no URL is registered)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
    assert len(mock.calls) == 0, "a request was sent to a provider"


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is `status` with the documented error shape (and `code`)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def raw_post(client, url, body: bytes | str, content_type="application/json", method="post"):
    return getattr(client, method)(url, data=body, content_type=content_type)


def make_key_undecryptable(config) -> None:
    """Store ciphertext that no configured FIELD_ENCRYPTION_KEY opens."""
    from cryptography.fernet import Fernet
    from django.db import connection

    from llm_providers.models import ProviderConfig

    foreign = Fernet(Fernet.generate_key()).encrypt(b"sk-test-fake-key-lost").decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llm_provider_configs SET api_key_encrypted = %s WHERE id = %s",
            [foreign, ProviderConfig._meta.pk.get_db_prep_value(config.pk, connection)],
        )


@dataclass
class FakeError:
    type: str
    message: str
    status_code: int | None = None

    def as_dict(self):
        return {"type": self.type, "message": self.message, "status_code": self.status_code}


@dataclass
class FakeResult:
    success: bool = True
    content: str = "OK"
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    latency_ms: int = 42
    error: FakeError | None = None
    extra: dict = field(default_factory=dict)


class FakeLLMService:
    """Stands in for LLMService until it lands on main; records what it was asked."""

    calls: list = []
    result = FakeResult()

    def __init__(self, tenant_id, *, config=None):
        self.tenant_id = tenant_id
        self.config = config

    def generate_completion(self, prompt, max_tokens=1000, **kwargs):
        FakeLLMService.calls.append(
            {
                "tenant_id": self.tenant_id,
                "config": self.config,
                "prompt": prompt,
                "max_tokens": max_tokens,
                **kwargs,
            }
        )
        return FakeLLMService.result


def install_fake_llm(monkeypatch):
    """Put FakeLLMService where the test endpoint looks LLMService up."""
    from llm_providers import services

    FakeLLMService.calls = []
    FakeLLMService.result = FakeResult()
    monkeypatch.setattr(services, "LLMService", FakeLLMService, raising=False)
    return FakeLLMService
