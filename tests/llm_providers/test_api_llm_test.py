"""POST /api/llm/test: a real minimal completion, its outcome stored, throttled per tenant."""

import pytest

from llm_providers.models import ProviderConfig
from tests.factories import ProviderConfigFactory

from .api_support import (  # noqa: F401
    FAKE_KEY,
    OTHER_FAKE_KEY,
    FakeError,
    FakeResult,
    _fresh_cache,
    assert_error,
    install_fake_llm,
    no_network,
    raw_post,
)

pytestmark = pytest.mark.django_db

TEST_URL = "/api/llm/test"


@pytest.fixture
def fake_llm(monkeypatch):
    return install_fake_llm(monkeypatch)


def test_runs_a_minimal_completion_on_the_active_config_and_stores_the_outcome(
    tenant_client, fake_llm
):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    response = tenant_client.post(TEST_URL, {}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "error": None,
        "latency_ms": 42,
    }
    (call,) = fake_llm.calls
    assert call["tenant_id"] == tenant_client.tenant.pk
    assert call["config"].pk == config.pk
    assert call["endpoint"] == "test"
    assert call["max_tokens"] <= 16
    config.refresh_from_db()
    assert config.last_tested is not None
    assert config.last_test_success is True
    assert config.test_latency_ms == 42
    assert config.last_error == ""


def test_a_failed_provider_call_is_still_200_with_the_normalised_error(tenant_client, fake_llm):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    fake_llm.result = FakeResult(
        success=False,
        content="",
        latency_ms=7,
        error=FakeError("authentication", f"Incorrect API key provided: {FAKE_KEY}", 401),
    )
    response = tenant_client.post(TEST_URL, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["error"]["type"] == "authentication"
    assert body["error"]["status_code"] == 401
    assert FAKE_KEY not in response.content.decode()
    config.refresh_from_db()
    assert config.last_test_success is False
    assert config.last_error.startswith("Incorrect API key provided")
    assert FAKE_KEY not in config.last_error


def test_tests_the_config_named_by_config_id(tenant_client, fake_llm):
    ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    other = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False)
    response = tenant_client.post(TEST_URL, {"config_id": str(other.pk)}, format="json")
    assert response.status_code == 200
    assert fake_llm.calls[0]["config"].pk == other.pk
    other.refresh_from_db()
    assert other.last_test_success is True


def test_passes_a_custom_prompt(tenant_client, fake_llm):
    ProviderConfigFactory(tenant=tenant_client.tenant)
    tenant_client.post(TEST_URL, {"prompt": "Say hi"}, format="json")
    assert fake_llm.calls[0]["prompt"] == "Say hi"


@pytest.mark.usefixtures("no_network")
def test_another_tenants_config_id_is_404_and_nothing_is_sent(
    tenant_client, other_tenant, fake_llm
):
    theirs = ProviderConfigFactory(tenant=other_tenant, api_key=OTHER_FAKE_KEY)
    response = tenant_client.post(TEST_URL, {"config_id": str(theirs.pk)}, format="json")
    assert_error(response, 404, "not_found")
    assert fake_llm.calls == []
    theirs.refresh_from_db()
    assert theirs.last_tested is None


@pytest.mark.parametrize(
    "body",
    [
        {"config_id": "not-a-uuid"},
        {"config_id": 5},
        {"prompt": 5},
        {"prompt": ""},
        {"prompt": "x" * 2001},
        {"max_tokens": 100000},
        {"tenant_id": "tenant_other"},
    ],
)
@pytest.mark.usefixtures("no_network")
def test_bad_input_is_400_and_nothing_is_sent(tenant_client, fake_llm, body):
    ProviderConfigFactory(tenant=tenant_client.tenant)
    assert_error(tenant_client.post(TEST_URL, body, format="json"), 400, "validation_error")
    assert fake_llm.calls == []


def test_malformed_json_is_400(tenant_client, fake_llm):
    assert_error(raw_post(tenant_client, TEST_URL, "{"), 400, "parse_error")
    assert fake_llm.calls == []


def test_a_non_json_body_is_415(tenant_client, fake_llm):
    assert_error(raw_post(tenant_client, TEST_URL, "hi", "text/plain"), 415)
    assert fake_llm.calls == []


def test_an_oversized_body_is_413(tenant_client, fake_llm, settings):
    settings.API_MAX_BODY_BYTES = 64
    assert_error(raw_post(tenant_client, TEST_URL, '{"prompt": "%s"}' % ("x" * 100)), 413)
    assert fake_llm.calls == []


def test_is_throttled_per_tenant_with_retry_after(
    tenant_client, other_tenant_client, fake_llm, settings
):
    settings.LLM_TEST_THROTTLE_RATE = "2/min"
    ProviderConfigFactory(tenant=tenant_client.tenant)
    ProviderConfigFactory(tenant=other_tenant_client.tenant)
    assert tenant_client.post(TEST_URL, format="json").status_code == 200
    assert tenant_client.post(TEST_URL, format="json").status_code == 200
    response = tenant_client.post(TEST_URL, format="json")
    error = assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert error["details"]["retry_after"] > 0
    assert len(fake_llm.calls) == 2
    # Another tenant has its own budget.
    assert other_tenant_client.post(TEST_URL, format="json").status_code == 200


def test_the_throttle_counts_every_key_of_a_tenant_together(tenant_client, fake_llm, settings):
    from rest_framework.test import APIClient

    from tests.factories import TenantAPIKeyFactory

    settings.LLM_TEST_THROTTLE_RATE = "1/min"
    ProviderConfigFactory(tenant=tenant_client.tenant)
    second = APIClient()
    second.credentials(
        HTTP_AUTHORIZATION=f"Bearer {TenantAPIKeyFactory(tenant=tenant_client.tenant).plain_key}"
    )
    assert tenant_client.post(TEST_URL, format="json").status_code == 200
    assert_error(second.post(TEST_URL, format="json"), 429, "throttled")


def test_without_any_config_the_outcome_is_reported_and_no_config_is_touched(
    tenant_client, fake_llm
):
    fake_llm.result = FakeResult(
        success=False,
        provider=None,
        model=None,
        latency_ms=0,
        error=FakeError("configuration", "No active provider config for this tenant."),
    )
    response = tenant_client.post(TEST_URL, format="json")
    assert response.status_code == 200
    assert response.json()["error"]["type"] == "configuration"
    assert fake_llm.calls[0]["config"] is None
    assert not ProviderConfig.objects.exists()
