"""POST /api/llm/test: a real minimal completion, its outcome stored, throttled per tenant."""

import json

import pytest
import responses
from rest_framework.test import APIClient

from llm_providers.models import ProviderConfig, UsageLog
from tests.factories import ProviderConfigFactory, TenantAPIKeyFactory
from tests.support.wire import openai_reply

from .api_support import (
    FAKE_KEY,
    OTHER_FAKE_KEY,
    assert_error,
    make_key_undecryptable,
    raw_post,
)

pytestmark = pytest.mark.django_db

TEST_URL = "/api/llm/test"
OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_MESSAGES = "https://api.anthropic.com/v1/messages"


@pytest.fixture
def no_environment(settings):
    settings.LLM_DEFAULT_PROVIDER = ""
    settings.OPENAI_API_KEY = ""


@pytest.fixture
def wire():
    """The provider side: register replies; every request must match one."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_runs_a_minimal_completion_on_the_active_config_and_stores_the_outcome(tenant_client, wire):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    wire.post(OPENAI_CHAT, json=openai_reply("OK"))
    response = tenant_client.post(TEST_URL, {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "provider", "model", "error", "latency_ms"}
    assert body["success"] is True
    assert body["provider"] == "openai"
    assert body["model"] == "gpt-4o-mini"
    assert body["error"] is None
    assert isinstance(body["latency_ms"], int)
    sent = json.loads(wire.calls[0].request.body)
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) <= 16
    assert sent["model"] == "gpt-4o-mini"
    assert wire.calls[0].request.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    config.refresh_from_db()
    assert config.last_tested is not None
    assert config.last_test_success is True
    assert config.test_latency_ms == body["latency_ms"]
    assert config.last_error == ""
    log = UsageLog.objects.get()
    assert (log.endpoint, log.success, log.provider_config_id) == ("test", True, config.pk)
    assert FAKE_KEY not in response.content.decode()


def test_a_provider_refusal_is_still_200_with_the_normalised_error(tenant_client, wire):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    wire.post(
        OPENAI_CHAT,
        status=401,
        json={
            "error": {
                "message": f"Incorrect API key provided: {FAKE_KEY}.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
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
    assert config.last_error
    assert FAKE_KEY not in config.last_error
    assert UsageLog.objects.get().endpoint == "test"


def test_an_unreachable_provider_is_a_connection_error_not_a_crash(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as wire:
        # Nothing registered: every attempt fails to connect.
        body = tenant_client.post(TEST_URL, format="json").json()
        # One attempt: a connection test never retries (TEST_MAX_RETRIES = 0).
        assert len(wire.calls) == 1
    assert body["success"] is False
    assert body["error"]["type"] == "connection"
    config.refresh_from_db()
    assert config.last_test_success is False


def test_a_test_makes_one_attempt_and_leaves_the_config_metadata_alone(tenant_client, wire):
    config = ProviderConfigFactory(
        tenant=tenant_client.tenant, metadata={"max_retries": 3, "timeout": 5}
    )
    wire.post(OPENAI_CHAT, status=503, json={"error": {"message": "overloaded"}})
    body = tenant_client.post(TEST_URL, format="json").json()
    assert body["success"] is False
    assert body["error"]["status_code"] == 503
    assert len(wire.calls) == 1  # no retries, although the config allows three
    config.refresh_from_db()
    assert config.metadata == {"max_retries": 3, "timeout": 5}


def test_tests_the_config_named_by_config_id(tenant_client, wire):
    active = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    other = ProviderConfigFactory(
        tenant=tenant_client.tenant,
        is_active=False,
        provider="anthropic",
        default_model="claude-3-5-haiku-latest",
        api_key=OTHER_FAKE_KEY,
    )
    wire.post(
        ANTHROPIC_MESSAGES,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "OK"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    )
    response = tenant_client.post(TEST_URL, {"config_id": str(other.pk)}, format="json")
    assert response.status_code == 200
    assert response.json()["provider"] == "anthropic"
    assert response.json()["success"] is True
    other.refresh_from_db()
    active.refresh_from_db()
    assert other.last_test_success is True
    assert active.last_tested is None


def test_passes_a_custom_prompt(tenant_client, wire):
    ProviderConfigFactory(tenant=tenant_client.tenant)
    wire.post(OPENAI_CHAT, json=openai_reply())
    tenant_client.post(TEST_URL, {"prompt": "Say hi"}, format="json")
    sent = json.loads(wire.calls[0].request.body)
    assert sent["messages"][-1]["content"] == "Say hi"


@pytest.mark.usefixtures("no_network")
def test_an_undecryptable_key_is_a_configuration_error_and_nothing_is_sent(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    make_key_undecryptable(config)
    response = tenant_client.post(TEST_URL, format="json")
    assert response.status_code == 200
    assert response.json()["error"]["type"] == "configuration"
    assert "gAAAA" not in response.content.decode()
    config.refresh_from_db()
    assert config.last_test_success is False


@pytest.mark.usefixtures("no_network")
def test_without_any_config_or_environment_the_outcome_is_a_configuration_error(
    tenant_client, no_environment
):
    response = tenant_client.post(TEST_URL, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["error"]["type"] == "configuration"
    assert not ProviderConfig.objects.exists()


@pytest.mark.usefixtures("no_network")
def test_another_tenants_config_id_is_404_and_nothing_is_sent(tenant_client, other_tenant):
    theirs = ProviderConfigFactory(tenant=other_tenant, api_key=OTHER_FAKE_KEY)
    response = tenant_client.post(TEST_URL, {"config_id": str(theirs.pk)}, format="json")
    assert_error(response, 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.last_tested is None
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"config_id": "not-a-uuid"},
        {"config_id": 5},
        {"prompt": 5},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 2001},
        {"prompt": "nul\u0000"},
        {"max_tokens": 100000},
        {"tenant_id": "tenant_other"},
    ],
)
@pytest.mark.usefixtures("no_network")
def test_bad_input_is_400_and_nothing_is_sent(tenant_client, body):
    ProviderConfigFactory(tenant=tenant_client.tenant)
    assert_error(tenant_client.post(TEST_URL, body, format="json"), 400, "validation_error")
    assert not UsageLog.objects.exists()


@pytest.mark.usefixtures("no_network")
def test_malformed_json_is_400(tenant_client):
    assert_error(raw_post(tenant_client, TEST_URL, "{"), 400, "parse_error")


@pytest.mark.usefixtures("no_network")
def test_a_non_json_body_is_415(tenant_client):
    assert_error(raw_post(tenant_client, TEST_URL, "hi", "text/plain"), 415)


@pytest.mark.usefixtures("no_network")
def test_an_oversized_body_is_413(tenant_client, settings):
    settings.API_MAX_BODY_BYTES = 64
    assert_error(raw_post(tenant_client, TEST_URL, '{"prompt": "%s"}' % ("x" * 100)), 413)
    assert not UsageLog.objects.exists()


def test_is_throttled_per_tenant_with_retry_after(tenant_client, other_tenant_client, settings):
    settings.LLM_TEST_THROTTLE_RATE = "2/min"
    ProviderConfigFactory(tenant=tenant_client.tenant)
    ProviderConfigFactory(tenant=other_tenant_client.tenant)
    with responses.RequestsMock() as wire:
        wire.post(OPENAI_CHAT, json=openai_reply())
        assert tenant_client.post(TEST_URL, format="json").status_code == 200
        assert tenant_client.post(TEST_URL, format="json").status_code == 200
        response = tenant_client.post(TEST_URL, format="json")
        error = assert_error(response, 429, "throttled")
        assert int(response["Retry-After"]) > 0
        assert error["details"]["retry_after"] > 0
        assert len(wire.calls) == 2
        # Another tenant has its own budget.
        assert other_tenant_client.post(TEST_URL, format="json").status_code == 200
        assert len(wire.calls) == 3


def test_the_throttle_counts_every_key_of_a_tenant_together(tenant_client, settings):
    settings.LLM_TEST_THROTTLE_RATE = "1/min"
    ProviderConfigFactory(tenant=tenant_client.tenant)
    second = APIClient()
    second.credentials(
        HTTP_AUTHORIZATION=f"Bearer {TenantAPIKeyFactory(tenant=tenant_client.tenant).plain_key}"
    )
    with responses.RequestsMock() as wire:
        wire.post(OPENAI_CHAT, json=openai_reply())
        assert tenant_client.post(TEST_URL, format="json").status_code == 200
        assert_error(second.post(TEST_URL, format="json"), 429, "throttled")
        assert len(wire.calls) == 1


def test_no_key_reaches_the_logs(tenant_client, caplog):
    caplog.set_level("DEBUG")
    configured = tenant_client.post(
        "/api/llm/provider/configure",
        {"provider": "openai", "api_key": FAKE_KEY, "default_model": "gpt-4o-mini"},
        format="json",
    )
    assert configured.status_code == 201
    config_url = f"/api/llm/provider/configs/{configured.json()['id']}"
    tenant_client.patch(config_url, {"api_key": OTHER_FAKE_KEY}, format="json")
    tenant_client.post(
        "/api/llm/provider/configure",
        {"provider": "openai", "api_key": "bad key with spaces", "default_model": "m"},
        format="json",
    )
    with responses.RequestsMock() as wire:
        wire.post(
            OPENAI_CHAT,
            status=401,
            json={"error": {"message": f"Incorrect API key provided: {OTHER_FAKE_KEY}"}},
        )
        tenant_client.post(TEST_URL, format="json")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the calls above did log something
    for secret in (FAKE_KEY, OTHER_FAKE_KEY, "bad key with spaces"):
        assert secret not in logged
