"""Short keys are redacted and barely hinted; URL credentials are redacted (issue 15.12, B3)."""

import logging

import pytest

from llm_providers.models import ProviderConfig, UsageLog, key_hint
from llm_providers.redaction import REDACTED, forget_secrets, redact, register_secret
from tests.factories import ProviderConfigFactory

SHORT_KEY = "short77"


@pytest.fixture(autouse=True)
def _forget():
    yield
    forget_secrets()


@pytest.mark.parametrize("key", ["short77", "abc", "k"])
def test_a_registered_key_of_any_length_is_redacted(key):
    register_secret(key)

    out = redact(f"Incorrect API key provided: {key}.")

    assert key not in out.replace(REDACTED, "")  # every occurrence, even inside words
    assert out.endswith(f": {REDACTED}.")


@pytest.mark.parametrize(
    ("key", "hint"),
    [("short77", ""), ("12345678", "78"), ("0123456789abcde", "de"), ("sk-test-fake-0001", "0001")],
)
def test_the_key_hint_shows_fewer_characters_of_a_shorter_key(key, hint):
    assert key_hint(key) == hint
    config = ProviderConfig()
    config.set_api_key(key)
    assert config.api_key_last4 == hint
    assert config.api_key_masked == f"****{hint}"  # still says "a key is set"


def test_a_short_key_echoed_by_the_provider_reaches_no_row_log_or_config(
    tenant_client, httpserver, caplog
):
    caplog.set_level(logging.DEBUG)
    config = ProviderConfigFactory(
        tenant=tenant_client.tenant,
        provider="local",
        default_model="m",
        base_url=httpserver.url_for("/v1"),
        api_key=SHORT_KEY,
    )
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": f"Incorrect API key provided: {SHORT_KEY}", "param": SHORT_KEY}},
        status=401,
    )
    caplog.clear()  # factory_boy's own debug lines name the key it was given

    response = tenant_client.post("/api/llm/test", {"config_id": str(config.pk)}, format="json")

    assert response.status_code == 200, response.content
    assert SHORT_KEY not in response.content.decode()
    config.refresh_from_db()
    assert config.last_error and SHORT_KEY not in config.last_error
    assert SHORT_KEY not in str(UsageLog.objects.values().get())
    logs = tenant_client.get("/api/llm/usage/logs")
    assert SHORT_KEY not in logs.content.decode()
    assert SHORT_KEY not in caplog.text
    assert config.api_key_last4 == ""


@pytest.mark.parametrize(
    "text",
    [
        "retrying POST https://user:pa55word@proxy.example/v1/chat in 0.5s",
        "base http://admin:s3cret@10.0.0.1:8080/v1",
        "connect to https://tok3n@gateway.example/v1 failed",
    ],
)
def test_credentials_in_a_url_are_redacted(text):
    out = redact(text)

    assert "pa55word" not in out and "s3cret" not in out and "tok3n" not in out
    assert f"://{REDACTED}@" in out


def test_the_logging_filter_redacts_url_credentials(caplog):
    logger = logging.getLogger("llm_providers.transport.send")
    with caplog.at_level(logging.INFO, logger="llm_providers.transport.send"):
        logger.info("retrying POST %s", "https://user:pa55word@proxy.example/v1")

    assert "pa55word" not in caplog.text
    assert "proxy.example" in caplog.text


def test_urls_without_credentials_are_left_alone():
    text = "POST https://api.openai.com/v1/chat/completions and mail me@example.com"
    assert redact(text) == text
