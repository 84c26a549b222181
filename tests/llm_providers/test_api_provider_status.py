"""GET /api/llm/provider/status: availability, source, key status and the latest test."""

from datetime import UTC, datetime

import pytest

from tests.factories import ProviderConfigFactory

from .api_support import FAKE_KEY, assert_error, make_key_undecryptable

pytestmark = pytest.mark.django_db

STATUS = "/api/llm/provider/status"


@pytest.fixture
def no_environment(settings):
    settings.LLM_DEFAULT_PROVIDER = ""
    settings.LLM_DEFAULT_MODEL = ""
    settings.OPENAI_API_KEY = ""


def test_status_reports_the_active_config_and_its_latest_test(tenant_client, no_environment):
    config = ProviderConfigFactory(
        tenant=tenant_client.tenant,
        api_key=FAKE_KEY,
        last_tested=datetime(2026, 11, 1, 12, tzinfo=UTC),
        last_test_success=False,
        test_latency_ms=321,
        last_error="rate limited",
    )
    response = tenant_client.get(STATUS)
    assert response.status_code == 200
    body = response.json()
    assert body["available"] is True
    assert body["source"] == "config"
    assert body["provider"] == "openai"
    assert body["model"] == "gpt-4o-mini"
    assert body["key_status"] == "ok"
    assert body["config"]["id"] == str(config.pk)
    assert body["error"] is None
    assert body["last_test"] == {
        "tested_at": "2026-11-01T12:00:00Z",
        "success": False,
        "latency_ms": 321,
        "error": "rate limited",
    }
    assert FAKE_KEY not in response.content.decode()


def test_status_reports_an_undecryptable_key_as_unavailable(tenant_client, no_environment):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    make_key_undecryptable(config)
    body = tenant_client.get(STATUS).json()
    assert body["available"] is False
    assert body["source"] == "config"
    assert body["key_status"] == "undecryptable"
    assert body["error"]["type"] == "configuration"
    assert "gAAAA" not in str(body)


def test_status_falls_back_to_the_environment_without_revealing_its_key(tenant_client, settings):
    settings.LLM_DEFAULT_PROVIDER = "openai"
    settings.LLM_DEFAULT_MODEL = "gpt-4o-mini"
    settings.OPENAI_API_KEY = FAKE_KEY
    response = tenant_client.get(STATUS)
    body = response.json()
    assert body["available"] is True
    assert body["source"] == "environment"
    assert body["provider"] == "openai"
    assert body["config"] is None
    assert FAKE_KEY not in response.content.decode()


def test_status_says_none_when_there_is_no_config_and_no_environment(tenant_client, no_environment):
    body = tenant_client.get(STATUS).json()
    assert body["available"] is False
    assert body["source"] == "none"
    assert body["config"] is None
    assert body["error"]["type"] == "configuration"


def test_status_ignores_other_tenants_configs(tenant_client, other_tenant, no_environment):
    ProviderConfigFactory(tenant=other_tenant, is_active=True)
    body = tenant_client.get(STATUS).json()
    assert body["source"] == "none"


def test_status_refuses_post(tenant_client):
    assert_error(tenant_client.post(STATUS, {}, format="json"), 405, "method_not_allowed")
