"""Helpers shared by the REST API tests (test_api_*.py)."""

import json

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
        # Inside the block: leaving it resets the recorded calls.
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
