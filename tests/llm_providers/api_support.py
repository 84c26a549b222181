"""Helpers shared by the REST API tests (test_api_*.py)."""

import json

# Obviously fake provider keys: they must never appear in a response body.
FAKE_KEY = "sk-test-fake-key-0001"
OTHER_FAKE_KEY = "sk-test-fake-key-0002"


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
