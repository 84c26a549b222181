"""Price overrides are bounded when saved, and a cost never fails or overflows (issue 15.4)."""

import importlib
import json
import logging
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import DataError, connection, transaction
from django.urls import reverse

from llm_providers.models import UsageLog
from llm_providers.providers.base import TokenUsage
from llm_providers.services import LLMService
from llm_providers.usage import pricing
from llm_providers.usage.pricing import MAX_CALL_COST_USD, cost_usd, validate_pricing
from tests.factories import UsageLogFactory
from tests.support.wire import openai_reply

CONFIGURE = "/api/llm/provider/configure"
LOCAL = {"provider": "local", "default_model": "m", "base_url": "http://127.0.0.1:9/v1"}
HUGE = {"input_per_mtok": 1e308, "output_per_mtok": 1e308}


@pytest.mark.parametrize(
    "price", ["1O.5", 1e308, "1e400", -1, 10_001, "NaN", "Infinity", True, [1], {"x": 1}, None]
)
def test_a_price_that_is_not_a_bounded_number_is_refused(price):
    with pytest.raises(ValueError, match="input_per_mtok must be a number from 0 to 10000"):
        validate_pricing({"input_per_mtok": price, "output_per_mtok": 1})


@pytest.mark.parametrize("price", [0, "0.15", 2.5, 10_000, " 3 "])
def test_a_bounded_price_is_accepted(price):
    validate_pricing({"input_per_mtok": price, "output_per_mtok": 1, "models": {"x": {}}})


def test_per_model_prices_are_bounded_too():
    with pytest.raises(ValueError, match="output_per_mtok"):
        validate_pricing({"models": {"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 1e20}}})


@pytest.mark.parametrize("price", ["1O.5", 1e20])
def test_api_refuses_an_unusable_price_when_a_config_is_saved(tenant_client, price):
    metadata = {"pricing": {"input_per_mtok": price, "output_per_mtok": 1}}
    response = tenant_client.post(CONFIGURE, {**LOCAL, "metadata": metadata}, format="json")

    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    assert "pricing: input_per_mtok" in body["details"]["metadata"][0]
    assert UsageLog.objects.count() == 0


def test_api_refuses_an_unusable_price_on_patch(tenant_client):
    created = tenant_client.post(CONFIGURE, LOCAL, format="json")
    assert created.status_code == 201, created.content
    response = tenant_client.patch(
        f"/api/llm/provider/configs/{created.json()['id']}",
        {"metadata": {"pricing": {"input_per_mtok": "1O.5", "output_per_mtok": "1"}}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "pricing" in response.json()["error"]["details"]["metadata"][0]


def test_admin_form_refuses_an_unusable_price(admin_client, tenant):
    response = admin_client.post(
        reverse("admin:llm_providers_providerconfig_add"),
        {
            "tenant": tenant.pk,
            "provider": "local",
            "default_model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "metadata": json.dumps({"pricing": HUGE}),
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["metadata"]
    assert "pricing" in errors[0]


# -- computing a cost -------------------------------------------------------------------
def test_cost_of_an_unbounded_override_saved_before_the_bound_never_raises():
    usage = TokenUsage(prompt_tokens=5, completion_tokens=3)

    # Out-of-bound prices are no override at all: local falls back to free.
    assert cost_usd("local", "m", usage, metadata={"pricing": HUGE}) == 0
    assert cost_usd("openai", "no-such-model", usage, metadata={"pricing": HUGE}) is None


def test_cost_beyond_the_call_bound_is_unknown_and_logged(caplog):
    usage = TokenUsage(prompt_tokens=10**9, completion_tokens=10**9)  # a lying provider
    prices = {"pricing": {"input_per_mtok": 10_000, "output_per_mtok": 10_000}}

    with caplog.at_level(logging.WARNING, logger="llm_providers.usage.pricing"):
        assert cost_usd("local", "m", usage, metadata=prices) is None
    assert "out of range" in caplog.text


def test_cost_computation_failure_is_unknown_not_an_exception(monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise ArithmeticError("boom")

    monkeypatch.setattr(pricing, "_cost_from_override", boom)
    prices = {"pricing": {"input_per_mtok": 1, "output_per_mtok": 1}}

    assert cost_usd("local", "m", TokenUsage(1, 1), metadata=prices) is None
    assert "could not be computed" in caplog.text


def test_highest_price_on_a_large_call_fits_the_cost_column(upstream_with, local_config_for):
    # 1M tokens at the highest accepted price: stored and read back on either database.
    usage = {"prompt_tokens": 500_000, "completion_tokens": 500_000, "total_tokens": 10**6}
    server = upstream_with(openai_reply(usage=usage))
    local_config_for(
        server.url_for("/v1"),
        metadata={"pricing": {"input_per_mtok": 10_000, "output_per_mtok": "10000"}},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success, result.error
    assert UsageLog.objects.get().cost_usd == MAX_CALL_COST_USD == Decimal(10_000)


def test_call_with_an_unbounded_override_still_writes_its_usage_row(
    upstream_with, local_config_for
):
    server = upstream_with(openai_reply())
    local_config_for(server.url_for("/v1"), metadata={"pricing": HUGE})

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success, result.error
    assert UsageLog.objects.get().success is True


def test_stream_with_an_unbounded_override_still_writes_its_usage_row(httpserver, local_config_for):
    stream = (
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}\n\n'
        "data: [DONE]\n\n"
    )
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        stream, content_type="text/event-stream"
    )
    local_config_for(
        httpserver.url_for("/v1"), metadata={"pricing": {**HUGE, "input_per_mtok": "1e400"}}
    )

    with LLMService("tenant_123").stream_chat([{"role": "user", "content": "x"}]) as chat:
        text = "".join(d.text for d in chat)

    assert text == "Hi"
    row = UsageLog.objects.get()
    assert (row.success, row.completion_tokens) == (True, 1)


@pytest.fixture
def upstream_with(httpserver):
    def make(reply):
        httpserver.expect_request("/v1/chat/completions").respond_with_json(reply)
        return httpserver

    return make


# -- rows written before the bound ------------------------------------------------------
def test_rows_with_an_unstorable_cost_are_readable_after_the_migration(tenant_client):
    row = UsageLogFactory(tenant=tenant_client.tenant, cost_usd=Decimal("1"))
    unbounded = "UPDATE llm_usage_logs SET cost_usd = 800000000000000 WHERE id = %s"
    if connection.vendor != "sqlite":
        # PostgreSQL refuses the value outright (numeric field overflow): such rows can
        # only exist on SQLite, which is what the migration mends.
        with pytest.raises(DataError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(unbounded, [row.pk])
        return
    with connection.cursor() as cursor:  # what an unbounded override wrote before
        cursor.execute(unbounded, [row.pk])
    with pytest.raises(Exception):  # noqa: B017  (decimal.InvalidOperation, via the API)
        UsageLog.objects.get(pk=row.pk)

    migration = importlib.import_module("llm_providers.migrations.0004_null_unstorable_costs")
    migration.null_unstorable_costs(apps, None)

    logs = tenant_client.get("/api/llm/usage/logs")
    assert logs.status_code == 200, logs.content
    assert logs.json()["results"][0]["cost_usd"] is None
    assert tenant_client.get("/api/llm/usage/stats").status_code == 200
