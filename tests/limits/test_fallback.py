"""Fallbacks across a tenant's configs: when they happen, when never, and what is recorded."""

import json

import pytest
from django.urls import reverse
from werkzeug import Response

from llm_providers.engine.service import LLMService
from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory
from tests.support.upstream import chat_reply

from .conftest import set_limits

pytestmark = pytest.mark.django_db

SSE_OK = (
    'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
    "data: [DONE]\n\n"
)
SSE_BREAKS = (
    'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    'data: {"error":{"message":"upstream fell over","type":"server_error"}}\n\n'
)


@pytest.fixture
def two_configs(tenant, httpserver, settings):
    """Active config on /a (first), fallback on /b (fallback_order 1), /c out of the chain."""
    settings.LLM_MAX_RETRIES = 0

    def config(name, **kwargs):
        return ProviderConfigFactory(
            tenant=tenant,
            provider="local",
            base_url=httpserver.url_for(f"/{name}/v1"),
            default_model=f"model-{name}",
            api_key="",
            **kwargs,
        )

    return {
        "a": config("a", is_active=True),
        "b": config("b", is_active=False, fallback_order=1),
        "c": config("c", is_active=False),
    }


def answer(httpserver, name, status=200, body=None):
    httpserver.expect_request(f"/{name}/v1/chat/completions").respond_with_json(
        body or chat_reply(f"from {name}", 6, 2), status=status
    )


def call(tenant, **kwargs):
    return LLMService(tenant.pk).generate_completion("hi", max_tokens=2, **kwargs)


def rows(tenant):
    return list(UsageLog.objects.filter(tenant=tenant).order_by("id"))


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_failure_falls_back_to_the_next_config(tenant, two_configs, httpserver, status):
    answer(httpserver, "a", status=status, body={"error": {"message": "down"}})
    answer(httpserver, "b")
    result = call(tenant)
    assert result.success and result.content == "from b"
    assert (result.provider, result.model) == ("local", "model-b")
    first, second = rows(tenant)
    assert first.provider_config_id == two_configs["a"].pk and not first.success
    assert second.provider_config_id == two_configs["b"].pk and second.success
    assert first.metadata["request_id"] == second.metadata["request_id"]
    assert "fallback_from" not in first.metadata
    assert second.metadata["fallback_from"] == str(two_configs["a"].pk)


def test_connection_failure_falls_back(tenant, two_configs, httpserver, closed_port):
    two_configs["a"].base_url = closed_port
    two_configs["a"].save()
    answer(httpserver, "b")
    assert call(tenant).content == "from b"


@pytest.fixture
def closed_port():
    from tests.support.processes import closed_port_url

    return closed_port_url()


@pytest.mark.parametrize(
    "status,kind", [(400, "invalid_request"), (401, "authentication"), (403, "permission")]
)
def test_client_and_key_errors_never_fall_back(tenant, two_configs, httpserver, status, kind):
    answer(httpserver, "a", status=status, body={"error": {"message": "no"}})
    answer(httpserver, "b")
    result = call(tenant)
    assert result.error.type == kind
    assert len(rows(tenant)) == 1


def test_own_limits_never_fall_back(tenant, two_configs, httpserver, fake_clock):
    answer(httpserver, "a")
    answer(httpserver, "b")
    set_limits(tenant, requests_per_minute=1)
    assert call(tenant).content == "from a"
    refused = call(tenant)
    assert refused.error.type == ErrorType.RATE_LIMITED
    assert len(rows(tenant)) == 2


def test_the_chain_ends_with_the_last_configs_error(tenant, two_configs, httpserver):
    answer(httpserver, "a", status=500, body={"error": {"message": "a down"}})
    answer(httpserver, "b", status=502, body={"error": {"message": "b down"}})
    answer(httpserver, "c")  # not in the chain
    result = call(tenant)
    assert result.error.type == ErrorType.SERVER_ERROR
    assert [r.provider_config_id for r in rows(tenant)] == [
        two_configs["a"].pk,
        two_configs["b"].pk,
    ]


def test_an_open_breaker_skips_straight_to_the_fallback(tenant, two_configs, httpserver, settings):
    settings.LLM_BREAKER_FAILURES = 2
    answer(httpserver, "a", status=500, body={"error": {"message": "down"}})
    answer(httpserver, "b")
    call(tenant)
    call(tenant)  # a's breaker opens
    a_requests = sum(1 for r, _ in httpserver.log if r.path.startswith("/a/"))
    assert call(tenant).content == "from b"
    assert sum(1 for r, _ in httpserver.log if r.path.startswith("/a/")) == a_requests
    skipped = rows(tenant)[-2]
    assert skipped.error_type == ErrorType.OVERLOADED and "circuit breaker" in skipped.error_message


def test_stream_failing_before_the_first_byte_falls_back(tenant, two_configs, httpserver):
    answer(httpserver, "a", status=503, body={"error": {"message": "busy"}})
    httpserver.expect_request("/b/v1/chat/completions").respond_with_response(
        Response(SSE_OK, mimetype="text/event-stream")
    )
    stream = LLMService(tenant.pk).stream_chat([{"role": "user", "content": "hi"}])
    assert stream.error is None and stream.provider == "local"
    assert "".join(d.text or "" for d in stream) == "Hi"
    first, second = rows(tenant)
    assert (first.success, second.success) == (False, True)
    assert second.metadata["fallback_from"] == str(two_configs["a"].pk)
    assert second.metadata["request_id"] == first.metadata["request_id"]


def test_stream_failing_after_the_first_byte_never_falls_back(tenant, two_configs, httpserver):
    httpserver.expect_request("/a/v1/chat/completions").respond_with_response(
        Response(SSE_BREAKS, mimetype="text/event-stream")
    )
    answer(httpserver, "b")
    stream = LLMService(tenant.pk).stream_chat([{"role": "user", "content": "hi"}])
    deltas = list(stream)
    # The error event, then the final event carrying the failed ChatResult.
    assert deltas[0].text == "Hi" and deltas[-2].error is not None
    assert deltas[-1].done and deltas[-1].result.error is not None
    (row,) = rows(tenant)
    assert row.provider_config_id == two_configs["a"].pk and not row.success
    assert not any(r.path.startswith("/b/") for r, _ in httpserver.log)


def test_connection_test_never_falls_back(tenant_client, tenant, two_configs, httpserver):
    answer(httpserver, "a", status=500, body={"error": {"message": "down"}})
    answer(httpserver, "b")
    body = tenant_client.post(reverse("llm-test"), {}, format="json").json()
    assert body["success"] is False
    assert len(rows(tenant)) == 1


def test_v1_says_which_provider_served(client, api_key, tenant, two_configs, httpserver):
    answer(httpserver, "a", status=500, body={"error": {"message": "down"}})
    answer(httpserver, "b")
    response = client.post(
        "/v1/chat/completions",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
    )
    assert response.status_code == 200
    assert response["x-switchyard-provider"] == "local"
    assert response.json()["choices"][0]["message"]["content"] == "from b"


def test_fallback_order_is_editable_through_the_api(tenant_client, two_configs):
    url = reverse("llm-provider-config-detail", kwargs={"pk": two_configs["c"].pk})
    response = tenant_client.patch(url, {"fallback_order": 0}, format="json")
    assert response.status_code == 200 and response.json()["fallback_order"] == 0
    assert tenant_client.patch(url, {"fallback_order": "1"}, format="json").status_code == 400
    assert tenant_client.patch(url, {"fallback_order": -1}, format="json").status_code == 400
    response = tenant_client.patch(url, {"fallback_order": None}, format="json")
    assert response.json()["fallback_order"] is None


def test_v1_stream_falls_back_before_the_first_byte_and_names_the_serving_model(
    client, api_key, tenant, two_configs, httpserver
):
    answer(httpserver, "a", status=503, body={"error": {"message": "busy"}})
    httpserver.expect_request("/b/v1/chat/completions").respond_with_response(
        Response(SSE_OK, mimetype="text/event-stream")
    )
    response = client.post(
        "/v1/chat/completions",
        json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
    )
    assert response.status_code == 200 and response["x-switchyard-provider"] == "local"
    events = [
        json.loads(line[6:])
        for line in b"".join(response.streaming_content).decode().splitlines()
        if line.startswith("data: {")
    ]
    assert events and {e["model"] for e in events} == {"model-b"}
    assert [r.provider_config_id for r in rows(tenant)] == [
        two_configs["a"].pk,
        two_configs["b"].pk,
    ]
