"""LLMService: configuration source, availability, usage rows, argument checks (SPEC §4)."""

from decimal import Decimal

import pytest
import responses
from cryptography.fernet import Fernet
from django.test import override_settings

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import CompletionResult, LLMService, llm_provider_service
from tests.factories import ProviderConfigFactory, TenantFactory
from tests.support.wire import ANTHROPIC_KEY, OPENAI_KEY, openai_reply

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
def fallback(settings):
    settings.LLM_DEFAULT_PROVIDER = "openai"
    settings.LLM_DEFAULT_MODEL = "gpt-4o"
    settings.OPENAI_API_KEY = "sk-test-fake-env-key-0009"
    return settings


# -- configuration source -----------------------------------------------------------------
@responses.activate
def test_uses_the_tenants_active_config(openai_config):
    responses.post(OPENAI_CHAT, json=openai_reply())

    service = LLMService("tenant_123")

    assert service.is_available() and service.source == "config"
    result = service.generate_completion("Generate system blueprint", max_tokens=1000)
    assert result.success
    log = UsageLog.objects.get()
    assert log.provider_config_id == openai_config.pk


@responses.activate
def test_falls_back_to_environment_when_tenant_has_no_config(tenant, fallback):
    responses.post(OPENAI_CHAT, json=openai_reply(model="gpt-4o-2024-08-06"))

    service = LLMService("tenant_123")
    result = service.generate_completion("Hi")

    assert service.source == "environment"
    assert result.success and result.model == "gpt-4o"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-test-fake-env-key-0009"
    log = UsageLog.objects.get()
    assert log.provider_config_id is None
    assert log.metadata["source"] == "environment"


@responses.activate
def test_environment_fallback_uses_default_base_url(tenant, fallback):
    fallback.LLM_DEFAULT_BASE_URL = "https://gateway.example.test/v1"
    responses.post("https://gateway.example.test/v1/chat/completions", json=openai_reply())

    assert LLMService("tenant_123").generate_completion("Hi").success


def test_inactive_config_is_ignored_in_favour_of_the_fallback(tenant, fallback):
    ProviderConfigFactory(tenant=tenant, is_active=False, api_key=OPENAI_KEY)

    assert LLMService("tenant_123").source == "environment"


@pytest.mark.parametrize(
    ("provider", "key_setting"),
    [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"), ("groq", "GROQ_API_KEY")],
)
def test_fallback_without_its_key_is_unavailable(tenant, settings, provider, key_setting):
    settings.LLM_DEFAULT_PROVIDER = provider
    settings.LLM_DEFAULT_MODEL = "some-model"
    setattr(settings, key_setting, "")

    service = LLMService("tenant_123")

    assert service.is_available() is False
    assert key_setting in service.describe()["error"]["message"]


def test_local_fallback_needs_a_base_url(tenant, settings):
    settings.LLM_DEFAULT_PROVIDER = "local"
    settings.LLM_DEFAULT_MODEL = "gemma"
    settings.LLM_DEFAULT_BASE_URL = ""
    assert LLMService("tenant_123").is_available() is False
    settings.LLM_DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
    assert LLMService("tenant_123").is_available() is True


def test_unavailable_without_config_or_fallback_is_a_configuration_error_with_a_row(
    tenant, settings
):
    settings.LLM_DEFAULT_PROVIDER = ""

    service = LLMService("tenant_123")
    result = service.generate_completion("Hi")

    assert service.is_available() is False and service.source is None
    assert result.success is False
    assert result.error.type == ErrorType.CONFIGURATION
    log = UsageLog.objects.get()
    assert (log.success, log.error_type, log.tenant_id) == (False, "configuration", "tenant_123")
    assert log.id == result.usage_log_id


def test_unknown_tenant_is_unavailable_and_writes_no_row(db, fallback):
    service = LLMService("no_such_tenant")

    result = service.generate_completion("Hi")

    assert service.is_available() is False
    assert result.error.type == ErrorType.CONFIGURATION
    assert "Unknown tenant" in result.error.message
    assert result.usage_log_id is None
    assert not UsageLog.objects.exists()


def test_inactive_tenant_is_unavailable(db, fallback):
    TenantFactory(id="tenant_off", is_active=False)
    ProviderConfigFactory(tenant_id="tenant_off", api_key=OPENAI_KEY)

    result = LLMService("tenant_off").generate_completion("Hi")

    assert result.error.type == ErrorType.CONFIGURATION
    assert UsageLog.objects.get().tenant_id == "tenant_off"


def test_is_available_makes_no_network_call(openai_config):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        assert LLMService("tenant_123").is_available() is True
        assert len(mock.calls) == 0


def test_undecryptable_key_is_a_configuration_error_and_nothing_is_sent(openai_config):
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.post(OPENAI_CHAT, json=openai_reply())
            service = LLMService("tenant_123")
            available = service.is_available()
            result = service.generate_completion("Hi")
            assert len(mock.calls) == 0

    assert available is False
    assert result.error.type == ErrorType.CONFIGURATION
    assert "decrypt" in result.error.message
    log = UsageLog.objects.get()
    assert log.error_type == "configuration" and log.provider_config_id == openai_config.pk
    assert "gAAAA" not in log.error_message  # no ciphertext either


def test_forced_config_is_used_even_when_inactive(tenant, openai_config):
    other = ProviderConfigFactory(
        tenant=tenant,
        provider="anthropic",
        default_model="claude-haiku-4-5",
        api_key=ANTHROPIC_KEY,
        is_active=False,
    )

    service = LLMService("tenant_123", config=other)

    assert service.resolve().provider == "anthropic"


def test_forced_config_of_another_tenant_is_refused(tenant, other_tenant):
    foreign = ProviderConfigFactory(tenant=other_tenant, api_key=OPENAI_KEY)

    with pytest.raises(ValueError):
        LLMService("tenant_123", config=foreign)


def test_configuration_is_looked_up_once_per_service(openai_config, django_assert_num_queries):
    service = LLMService("tenant_123")
    with django_assert_num_queries(1):
        service.is_available()
        service.is_available()
        service.describe()


@responses.activate
def test_a_call_is_one_select_and_one_insert(openai_config, django_assert_num_queries):
    responses.post(OPENAI_CHAT, json=openai_reply())
    from llm_providers.limits import policy

    # Once per tenant per LLM_LIMITS_CACHE_SECONDS and process: its limits and whether it
    # has a fallback chain (llm_providers.limits.policy), then cached.
    policy.forget()
    with django_assert_num_queries(3):
        LLMService("tenant_123").generate_completion("Hi")
    with django_assert_num_queries(2):
        LLMService("tenant_123").generate_completion("Hi")


# -- results and usage rows ---------------------------------------------------------------
@responses.activate
def test_success_writes_one_usage_row_with_tokens_cost_and_metadata(openai_config):
    responses.post(OPENAI_CHAT, json=openai_reply(), headers={"x-request-id": "req_123"})

    result = LLMService("tenant_123").generate_completion(
        "Hi", max_tokens=10, metadata={"build_id": "b-1"}
    )

    log = UsageLog.objects.get()
    assert log.id == result.usage_log_id
    assert (log.provider, log.model, log.endpoint) == ("openai", "gpt-4o-mini", "completion")
    assert (log.prompt_tokens, log.completion_tokens, log.tokens_used) == (12, 5, 17)
    assert log.cost_usd == Decimal("0.00000480")
    assert log.success is True and log.status_code == 200
    assert log.error_type == "" and log.error_message == ""
    assert log.latency_ms == result.latency_ms
    assert log.metadata["build_id"] == "b-1"
    assert log.metadata["attempts"] == 1
    assert log.metadata["request_id"] == "req_123"
    assert log.metadata["finish_reason"] == "stop"
    assert "prompt" not in log.metadata and "response" not in log.metadata


@responses.activate
def test_failure_writes_one_usage_row_with_the_error(openai_config):
    responses.post(
        OPENAI_CHAT,
        status=401,
        json={
            "error": {
                "message": "Incorrect API key provided: sk-test-****0001.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success is False and result.content == ""
    assert result.error.type == ErrorType.AUTHENTICATION
    log = UsageLog.objects.get()
    assert (log.success, log.error_type, log.status_code) == (False, "authentication", 401)
    assert "Incorrect API key" in log.error_message
    assert log.tokens_used == 0 and log.cost_usd == Decimal("0")


@responses.activate
def test_retries_are_inside_one_usage_row(openai_config):
    responses.post(OPENAI_CHAT, status=500, json={"error": {"message": "boom"}})
    responses.post(OPENAI_CHAT, json=openai_reply())

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success and result.attempts == 2
    log = UsageLog.objects.get()
    assert log.metadata["attempts"] == 2


@responses.activate
def test_prompts_are_stored_only_when_prompt_logging_is_on(openai_config, settings):
    responses.post(OPENAI_CHAT, json=openai_reply("the answer"))
    settings.LLM_LOG_PROMPTS = True

    LLMService("tenant_123").generate_completion("the question", system="sys")

    log = UsageLog.objects.get()
    assert log.metadata["prompt"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "the question"},
    ]
    assert log.metadata["response"] == "the answer"


@responses.activate
def test_model_argument_overrides_the_default_model(openai_config):
    responses.post(OPENAI_CHAT, json=openai_reply())

    result = LLMService("tenant_123").generate_completion("Hi", model="gpt-4.1")

    assert result.model == "gpt-4.1"
    assert b'"model": "gpt-4.1"' in responses.calls[0].request.body


@responses.activate
def test_chat_passes_messages_and_extra_fields(openai_config):
    responses.post(OPENAI_CHAT, json=openai_reply())

    result = LLMService("tenant_123").chat(
        [{"role": "user", "content": "Hi"}],
        extra={"top_p": 0.5, "model": "ignored", "stream": True},
    )

    body = responses.calls[0].request.body
    assert b'"top_p": 0.5' in body and b"ignored" not in body and b'"stream"' not in body
    assert UsageLog.objects.get(pk=result.usage_log_id).endpoint == "chat"


@responses.activate
def test_as_dict_is_json_safe(openai_config):
    import json

    responses.post(OPENAI_CHAT, json=openai_reply())
    ok = LLMService("tenant_123").generate_completion("Hi").as_dict()
    assert json.loads(json.dumps(ok))["cost_usd"] == "0.00000480"
    assert ok["error"] is None

    failed = CompletionResult(success=False, error=None)
    assert json.dumps(failed.as_dict())


def test_list_models_failure_is_a_result_and_a_validation_row(openai_config):
    with responses.RequestsMock() as mock:
        mock.get("https://api.openai.com/v1/models", status=401, json={"error": {"message": "x"}})
        result = LLMService("tenant_123").list_models(timeout=2)

    assert result.success is False
    assert result.error.type == ErrorType.AUTHENTICATION
    log = UsageLog.objects.get()
    assert log.endpoint == "validation" and log.success is False


def test_save_then_complete_through_the_spec_api(tenant):
    config_id = llm_provider_service.save_provider_config(
        tenant_id="tenant_123",
        provider="openai",
        api_key=OPENAI_KEY,
        default_model="gpt-4o-mini",
    )
    with responses.RequestsMock() as mock:
        mock.post(OPENAI_CHAT, json=openai_reply())
        result = LLMService("tenant_123").generate_completion(
            prompt="Generate system blueprint", max_tokens=1000
        )
    assert result.success
    assert UsageLog.objects.get().provider_config_id == config_id


# -- programming errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": None},
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "max_tokens": -5},
        {"prompt": "x", "max_tokens": "10"},
        {"prompt": "x", "max_tokens": True},
        {"prompt": "x", "temperature": 3},
        {"prompt": "x", "temperature": "hot"},
        {"prompt": "x", "endpoint": "nonsense"},
        {"prompt": "x", "metadata": ["not", "a", "dict"]},
        {"prompt": "x", "metadata": {"when": object()}},
        {"prompt": "x", "model": ""},
        {"prompt": "x", "system": 42},
    ],
)
def test_bad_arguments_raise_value_error(openai_config, kwargs):
    with pytest.raises(ValueError):
        LLMService("tenant_123").generate_completion(**kwargs)
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize(
    "messages",
    [
        [],
        "Hi",
        [{"content": "no role"}],
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": 5}],
    ],
)
def test_bad_messages_raise_value_error(openai_config, messages):
    with pytest.raises(ValueError):
        LLMService("tenant_123").chat(messages)


def test_empty_tenant_id_raises_value_error():
    with pytest.raises(ValueError):
        LLMService("")


@responses.activate
def test_reply_without_usage_costs_zero_on_local_and_null_elsewhere(tenant, local_config_for):
    reply = openai_reply()
    del reply["usage"]
    responses.post("http://127.0.0.1:8080/v1/chat/completions", json=reply)
    local_config_for("http://127.0.0.1:8080/v1")

    local = LLMService("tenant_123").generate_completion("Hi")

    assert local.success and local.tokens_used == 0
    assert local.cost_usd == Decimal("0")


@responses.activate
def test_reply_without_usage_has_unknown_cost_on_a_paid_provider(openai_config):
    reply = openai_reply()
    del reply["usage"]
    responses.post(OPENAI_CHAT, json=reply)

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success and result.cost_usd is None
    assert UsageLog.objects.get().cost_usd is None


@pytest.mark.parametrize("bad_key", ["local-test\nX-Injected: 1", "local-test-k€y-0001"])
def test_key_that_cannot_be_a_header_is_a_configuration_error(
    httpserver, local_config_for, bad_key
):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(openai_reply())
    local_config_for(httpserver.url_for("/v1"), api_key=bad_key)

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.error.type == ErrorType.CONFIGURATION
    assert result.attempts == 1
    assert len(httpserver.log) == 0
    assert bad_key not in result.error.message
