"""Metrics in one process: what each call adds, and who may read /metrics (SPEC §15)."""

import importlib

import pytest

from llm_providers import observability
from llm_providers.observability import metrics
from llm_providers.services import LLMService
from tests.support.wire import openai_reply

from .conftest import MODEL, post_chat

pytestmark = pytest.mark.django_db


def sample(name, **labels):
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_call_counts_its_request_tokens_duration_and_overhead(
    client, api_key, upstream_config, httpserver
):
    labels = dict(provider="local", model=MODEL, endpoint="chat", outcome="success")
    before = {
        "requests": sample("switchyard_llm_requests_total", **labels),
        "input": sample("switchyard_llm_tokens_total", provider="local", model=MODEL, type="input"),
        "output": sample(
            "switchyard_llm_tokens_total", provider="local", model=MODEL, type="output"
        ),
        "durations": sample(
            "switchyard_llm_request_duration_seconds_count", provider="local", endpoint="chat"
        ),
        "overhead": sample("switchyard_gateway_overhead_seconds_count"),
    }
    usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        openai_reply(model=MODEL, usage=usage)
    )
    assert post_chat(client, api_key).status_code == 200

    assert sample("switchyard_llm_requests_total", **labels) == before["requests"] + 1
    assert (
        sample("switchyard_llm_tokens_total", provider="local", model=MODEL, type="input")
        == before["input"] + 11
    )
    assert (
        sample("switchyard_llm_tokens_total", provider="local", model=MODEL, type="output")
        == before["output"] + 5
    )
    assert (
        sample("switchyard_llm_request_duration_seconds_count", provider="local", endpoint="chat")
        == before["durations"] + 1
    )
    assert sample("switchyard_gateway_overhead_seconds_count") == before["overhead"] + 1
    assert sample("switchyard_llm_inflight_requests") == 0


def test_a_failure_counts_under_its_error_type(tenant, upstream_config, httpserver, settings):
    settings.LLM_MAX_RETRIES = 0
    labels = dict(provider="local", model=MODEL, endpoint="chat", outcome="rate_limit")
    before = sample("switchyard_llm_requests_total", **labels)
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "slow down"}}, status=429
    )
    result = LLMService(tenant.pk).chat([{"role": "user", "content": "hi"}])
    assert not result.success
    assert sample("switchyard_llm_requests_total", **labels) == before + 1


def test_cache_and_reasoning_tokens_are_counted_by_type(
    tenant, upstream_config, httpserver, settings
):
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    before = {
        kind: sample("switchyard_llm_tokens_total", provider="local", model=MODEL, type=kind)
        for kind in ("cache_read", "reasoning")
    }
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        openai_reply(model=MODEL, usage=usage)
    )
    assert LLMService(tenant.pk).chat([{"role": "user", "content": "hi"}]).success
    for kind, count in (("cache_read", 8), ("reasoning", 4)):
        assert (
            sample("switchyard_llm_tokens_total", provider="local", model=MODEL, type=kind)
            == before[kind] + count
        )


def test_a_stream_is_in_flight_until_it_ends(tenant, upstream_config, httpserver):
    from werkzeug import Response

    from tests.llm_providers.test_streaming import OPENAI_STREAM

    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        Response(OPENAI_STREAM, mimetype="text/event-stream")
    )
    before = sample("switchyard_llm_inflight_requests")
    stream = LLMService(tenant.pk).stream_chat([{"role": "user", "content": "hi"}])
    assert sample("switchyard_llm_inflight_requests") == before + 1
    list(stream)
    assert sample("switchyard_llm_inflight_requests") == before


def test_a_call_dropped_without_a_result_is_not_left_in_flight():
    before = sample("switchyard_llm_inflight_requests")
    observed = observability.call_started(
        tenant_id="t", endpoint="chat", provider="local", model=MODEL
    )
    assert sample("switchyard_llm_inflight_requests") == before + 1
    del observed  # e.g. an exception between the start and the result
    assert sample("switchyard_llm_inflight_requests") == before


def test_model_labels_are_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_models_seen", set())
    monkeypatch.setattr(metrics, "MAX_MODEL_LABELS", 2)
    assert metrics.model_label("a") == "a"
    assert metrics.model_label("b") == "b"
    assert metrics.model_label("c") == "other"
    assert metrics.model_label("a") == "a"


# -- who may read /metrics -----------------------------------------------------------------
def test_metrics_answer_a_loopback_client_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"switchyard_gateway_overhead_seconds" in response.content


@pytest.mark.parametrize(
    "extra",
    [{"REMOTE_ADDR": "10.1.2.3"}, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}],
    ids=["remote client", "through a local proxy"],
)
def test_metrics_refuse_other_clients_without_a_token(client, settings, extra):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", **extra)
    assert response.status_code == 403
    assert b"switchyard_" not in response.content


def test_metrics_with_a_token_require_it_from_everyone(client, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-12")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    right = client.get(
        "/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer scrape-token-123"
    )
    assert right.status_code == 200
    assert b"switchyard_llm_inflight_requests" in right.content


def test_metrics_are_read_only(client):
    assert client.post("/metrics").status_code == 405


def test_tenant_labels_only_when_the_operator_turns_them_on(tenant, settings):
    try:
        settings.METRICS_TENANT_LABELS = True
        importlib.reload(metrics)
        metrics.record(
            tenant_id=tenant.pk, provider="local", model=MODEL, endpoint="chat",
            outcome="success", usage=None, cost=1, seconds=0.1,
        )  # fmt: skip
        assert (
            sample(
                "switchyard_llm_requests_total", provider="local", model=MODEL, endpoint="chat",
                outcome="success", tenant=tenant.pk,
            ) == 1
        )  # fmt: skip
        assert sample("switchyard_llm_cost_usd_total", provider="local", model=MODEL,
                      tenant=tenant.pk) == 1  # fmt: skip
    finally:
        settings.METRICS_TENANT_LABELS = False
        importlib.reload(metrics)
    assert "tenant" not in metrics.REQUESTS._labelnames
