"""Each provider's exact wire request and the parsing of a realistic reply (SPEC §5)."""

import json
from decimal import Decimal

import pytest
import responses

from llm_providers.errors import ErrorType
from llm_providers.providers import get_adapter
from llm_providers.providers.registry import UnknownProvider
from llm_providers.services import LLMService
from tests.factories import ProviderConfigFactory
from tests.support.wire import ANTHROPIC_KEY, GROQ_KEY, LOCAL_KEY, OPENAI_KEY, openai_reply

ANTHROPIC_REPLY = {
    "id": "msg_01TestReply",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "Blueprint: "},
        {"type": "text", "text": "three services."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "output_tokens": 7,
        "service_tier": "standard",
    },
}


def sent(call):
    return call.request.headers, json.loads(call.request.body)


@responses.activate
def test_openai_request_is_bearer_authenticated_chat_completion(openai_config):
    responses.post("https://api.openai.com/v1/chat/completions", json=openai_reply())

    LLMService("tenant_123").generate_completion(
        "Generate system blueprint", max_tokens=300, system="Be brief.", temperature=0.2
    )

    (call,) = responses.calls
    headers, body = sent(call)
    assert call.request.url == "https://api.openai.com/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"].startswith("switchyard-")
    assert "x-api-key" not in headers
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Generate system blueprint"},
        ],
        "max_completion_tokens": 300,
        "temperature": 0.2,
    }


@responses.activate
def test_openai_reply_is_parsed_with_usage_and_cost(openai_config):
    responses.post(
        "https://api.openai.com/v1/chat/completions",
        json=openai_reply("Hello there."),
        headers={"x-request-id": "req_test_42"},
    )

    result = LLMService("tenant_123").generate_completion("Hi", max_tokens=50)

    assert result.success is True
    assert result.content == "Hello there."
    assert (result.prompt_tokens, result.completion_tokens, result.tokens_used) == (12, 5, 17)
    assert result.finish_reason == "stop"
    assert result.provider == "openai" and result.model == "gpt-4o-mini"
    assert result.request_id == "req_test_42"
    assert result.attempts == 1
    # gpt-4o-mini: $0.15 in / $0.60 out per million tokens
    assert result.cost_usd == Decimal("0.00000480")


@responses.activate
def test_openai_organization_and_extra_headers_come_from_metadata(tenant):
    ProviderConfigFactory(
        tenant=tenant,
        api_key=OPENAI_KEY,
        metadata={
            "organization": "org-test",
            "headers": {"X-Team": "blue", "Authorization": "Bearer not-this-one"},
        },
    )
    responses.post("https://api.openai.com/v1/chat/completions", json=openai_reply())

    LLMService("tenant_123").generate_completion("Hi")

    headers = responses.calls[0].request.headers
    assert headers["OpenAI-Organization"] == "org-test"
    assert headers["X-Team"] == "blue"
    assert headers["Authorization"] == f"Bearer {OPENAI_KEY}"  # a config cannot replace auth


@responses.activate
def test_anthropic_request_has_api_key_version_max_tokens_and_top_level_system(anthropic_config):
    responses.post("https://api.anthropic.com/v1/messages", json=ANTHROPIC_REPLY)

    LLMService("tenant_123").generate_completion(
        "Generate system blueprint", max_tokens=512, system="You are an architect."
    )

    (call,) = responses.calls
    headers, body = sent(call)
    assert call.request.url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == ANTHROPIC_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["Content-Type"] == "application/json"
    assert "Authorization" not in headers
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": "You are an architect.",
        "messages": [{"role": "user", "content": "Generate system blueprint"}],
    }


@responses.activate
def test_anthropic_chat_without_max_tokens_still_sends_the_required_field(anthropic_config):
    responses.post("https://api.anthropic.com/v1/messages", json=ANTHROPIC_REPLY)

    LLMService("tenant_123").chat(
        [
            {"role": "system", "content": "One."},
            {"role": "system", "content": [{"type": "text", "text": "Two."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "More"}]},
        ],
        # A neutral frequency_penalty is honoured by leaving it out (a non-zero one is an
        # error: test_anthropic_refuses_fields_it_cannot_honour).
        extra={"stop": "END", "top_p": 0.9, "frequency_penalty": 0},
    )

    _, body = sent(responses.calls[0])
    assert body["max_tokens"] == 4096
    assert body["system"] == "One.\n\nTwo."
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "More"}]},
    ]
    assert body["stop_sequences"] == ["END"] and body["top_p"] == 0.9
    assert "frequency_penalty" not in body  # no Anthropic equivalent


@responses.activate
def test_anthropic_reply_joins_text_blocks_maps_stop_reason_and_counts_cache(anthropic_config):
    responses.post(
        "https://api.anthropic.com/v1/messages",
        json=ANTHROPIC_REPLY,
        headers={"request-id": "req_anthropic_1"},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.content == "Blueprint: three services."
    assert result.finish_reason == "stop"
    assert result.provider_finish_reason == "end_turn"
    # input_tokens excludes cached parts; prompt_tokens counts all input
    assert result.prompt_tokens == 1120
    assert result.completion_tokens == 7
    assert result.tokens_used == 1127
    assert result.request_id == "req_anthropic_1"
    # sonnet 4.5: 20 * 3 + 100 * 3.75 + 1000 * 0.30 + 7 * 15 per million
    assert result.cost_usd == Decimal("0.00084000")


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_anthropic_stop_reasons_map_to_openai_finish_reasons(stop_reason, finish_reason):
    reply = {**ANTHROPIC_REPLY, "stop_reason": stop_reason}
    parsed = get_adapter("anthropic").parse_chat_response(reply)
    assert parsed.finish_reason == finish_reason
    assert parsed.provider_finish_reason == stop_reason


@responses.activate
def test_groq_request_goes_to_groq_openai_path_with_bearer(groq_config):
    responses.post(
        "https://api.groq.com/openai/v1/chat/completions",
        json={
            **openai_reply("fast", model="llama-3.3-70b-versatile"),
            "usage": {
                "queue_time": 0.01,
                "prompt_tokens": 30,
                "prompt_time": 0.002,
                "completion_tokens": 10,
                "completion_time": 0.03,
                "total_tokens": 40,
                "total_time": 0.032,
            },
            "x_groq": {"id": "req_groq_1"},
        },
    )

    result = LLMService("tenant_123").generate_completion("Hi", max_tokens=64)

    (call,) = responses.calls
    headers, body = sent(call)
    assert call.request.url == "https://api.groq.com/openai/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {GROQ_KEY}"
    assert body["max_tokens"] == 64 and body["model"] == "llama-3.3-70b-versatile"
    assert result.content == "fast" and result.tokens_used == 40
    # llama-3.3-70b-versatile: $0.59 in / $0.79 out per million tokens
    assert result.cost_usd == Decimal("0.00002560")


@responses.activate
def test_local_provider_sends_no_authorization_without_a_key(local_config_for):
    local_config_for("http://127.0.0.1:8080/v1")
    responses.post("http://127.0.0.1:8080/v1/chat/completions", json=openai_reply("local"))

    result = LLMService("tenant_123").generate_completion("Hi", max_tokens=8)

    headers, body = sent(responses.calls[0])
    assert "Authorization" not in headers
    assert body["max_tokens"] == 8 and body["model"] == "gemma-3-270m"
    assert result.content == "local"
    assert result.cost_usd == Decimal("0")  # local is free unless overridden


@responses.activate
def test_local_provider_sends_bearer_when_a_key_is_set(local_config_for):
    local_config_for("http://127.0.0.1:8080/v1", api_key=LOCAL_KEY)
    responses.post("http://127.0.0.1:8080/v1/chat/completions", json=openai_reply())

    LLMService("tenant_123").generate_completion("Hi")

    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {LOCAL_KEY}"


@responses.activate
def test_config_base_url_overrides_environment_base_url(tenant, settings):
    settings.OPENAI_BASE_URL = "https://env-proxy.example.test/v1"
    ProviderConfigFactory(
        tenant=tenant, api_key=OPENAI_KEY, base_url="https://tenant-proxy.example.test/v1"
    )
    responses.post("https://tenant-proxy.example.test/v1/chat/completions", json=openai_reply())

    assert LLMService("tenant_123").generate_completion("Hi").success


@responses.activate
def test_environment_base_url_overrides_the_default(openai_config, settings):
    settings.OPENAI_BASE_URL = "https://env-proxy.example.test/v1/"
    responses.post("https://env-proxy.example.test/v1/chat/completions", json=openai_reply())

    assert LLMService("tenant_123").generate_completion("Hi").success


@responses.activate
def test_anthropic_base_url_from_environment(anthropic_config, settings):
    settings.ANTHROPIC_BASE_URL = "https://anthropic-proxy.example.test/v1"
    responses.post("https://anthropic-proxy.example.test/v1/messages", json=ANTHROPIC_REPLY)

    assert LLMService("tenant_123").generate_completion("Hi").success


@pytest.mark.parametrize(
    ("provider", "url", "auth_header"),
    [
        ("openai", "https://api.openai.com/v1/models", "Authorization"),
        ("anthropic", "https://api.anthropic.com/v1/models", "x-api-key"),
        ("groq", "https://api.groq.com/openai/v1/models", "Authorization"),
    ],
)
@responses.activate
def test_list_models_is_a_get_on_the_models_endpoint(tenant, provider, url, auth_header):
    ProviderConfigFactory(tenant=tenant, provider=provider, api_key="sk-test-fake-key-0005")
    responses.get(url, json={"object": "list", "data": [{"id": "m-1"}, {"id": "m-2"}]})

    result = LLMService("tenant_123").list_models(timeout=3)

    (call,) = responses.calls
    assert call.request.method == "GET" and call.request.url == url
    assert auth_header in call.request.headers
    assert result.success and result.models == ["m-1", "m-2"]
    assert result.as_dict()["error"] is None


def test_registry_knows_the_four_providers_and_refuses_others():
    assert {get_adapter(p).name for p in ("openai", "anthropic", "groq", "local")} == {
        "openai",
        "anthropic",
        "groq",
        "local",
    }
    with pytest.raises(UnknownProvider):
        get_adapter("cohere")


@pytest.mark.parametrize(
    "reply",
    [
        {"choices": []},
        {"id": "x"},
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        {"choices": [{"message": {"role": "assistant", "content": None}}]},
        ["not", "an", "object"],
    ],
)
@responses.activate
def test_openai_reply_without_usable_choice_is_bad_response(openai_config, reply):
    responses.post("https://api.openai.com/v1/chat/completions", json=reply)

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success is False
    assert result.error.type == ErrorType.BAD_RESPONSE
    assert result.error.status_code == 200


@responses.activate
def test_anthropic_reply_without_text_block_is_bad_response(anthropic_config):
    responses.post(
        "https://api.anthropic.com/v1/messages",
        json={**ANTHROPIC_REPLY, "content": [{"type": "thinking", "thinking": "..."}]},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.error.type == ErrorType.BAD_RESPONSE


def anthropic_error(kind, message="details"):
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    )


@pytest.mark.parametrize(
    ("status", "kind", "error_type"),
    [
        (400, "invalid_request_error", ErrorType.INVALID_REQUEST),
        (401, "authentication_error", ErrorType.AUTHENTICATION),
        (402, "billing_error", ErrorType.QUOTA_EXCEEDED),
        (403, "permission_error", ErrorType.PERMISSION),
        (404, "not_found_error", ErrorType.NOT_FOUND),
        (413, "request_too_large", ErrorType.INVALID_REQUEST),
        (429, "rate_limit_error", ErrorType.RATE_LIMIT),
        (500, "api_error", ErrorType.SERVER_ERROR),
        (529, "overloaded_error", ErrorType.OVERLOADED),
    ],
)
def test_anthropic_error_bodies_map_to_normalised_types(status, kind, error_type):
    error = get_adapter("anthropic").map_error(status, anthropic_error(kind, "Why it failed"))
    assert error.type == error_type
    assert error.status_code == status
    assert error.message == f"Anthropic {status}: Why it failed"


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (
            429,
            {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}},
            "quota_exceeded",
        ),
        (429, {"error": {"type": "requests", "code": "rate_limit_exceeded"}}, "rate_limit"),
        (503, {"error": {"message": "The engine is currently overloaded"}}, "overloaded"),
        (502, None, "server_error"),
        (504, None, "timeout"),
        (498, {"error": {"message": "flex tier capacity exceeded"}}, "overloaded"),
    ],
)
def test_openai_shaped_errors_map_by_code_then_status(status, body, error_type):
    raw = json.dumps(body).encode() if body else b"<html>Bad gateway</html>"
    error = get_adapter("groq").map_error(status, raw)
    assert error.type == error_type and error.status_code == status
