"""GET /api/llm/usage/stats and GET /api/llm/usage/logs."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory, UsageLogFactory

from .api_support import assert_error

pytestmark = pytest.mark.django_db

STATS = "/api/llm/usage/stats"
LOGS = "/api/llm/usage/logs"


def log(tenant, *, at=None, **fields):
    """A usage row created at `at` (created_at is auto_now_add, so it is set afterwards)."""
    row = UsageLogFactory(tenant=tenant, **fields)
    if at is not None:
        UsageLog.objects.filter(pk=row.pk).update(created_at=at)
        row.created_at = at
    return row


@pytest.fixture
def rows(tenant, other_tenant):
    now = timezone.now()
    log(
        tenant,
        at=now - timedelta(hours=1),
        provider="openai",
        model="gpt-4o-mini",
        tokens_used=30,
        prompt_tokens=20,
        completion_tokens=10,
        cost_usd=Decimal("0.0015"),
        latency_ms=100,
    )
    log(
        tenant,
        at=now - timedelta(days=1, hours=1),
        provider="openai",
        model="gpt-4o",
        tokens_used=300,
        prompt_tokens=200,
        completion_tokens=100,
        cost_usd=Decimal("0.03"),
        latency_ms=300,
        endpoint="test",
    )
    log(
        tenant,
        at=now - timedelta(days=2),
        provider="anthropic",
        model="claude-3-5-haiku",
        success=False,
        error_type="rate_limit",
        tokens_used=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=None,
        latency_ms=500,
    )
    # Outside the default 30-day window.
    log(tenant, at=now - timedelta(days=45), provider="openai", tokens_used=1000)
    # Another tenant's usage never counts.
    log(other_tenant, at=now - timedelta(hours=2), provider="openai", tokens_used=99999)
    return now


# -- stats ---------------------------------------------------------------------------------
def test_stats_totals_cover_the_last_30_days_by_default(tenant_client, rows):
    response = tenant_client.get(STATS)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group_by"] is None
    assert body["groups"] is None
    assert body["totals"] == {
        "requests": 3,
        "successes": 2,
        "failures": 1,
        "tokens": 330,
        "prompt_tokens": 220,
        "completion_tokens": 110,
        "cost_usd": "0.03150000",
        "unpriced_requests": 1,
        "avg_latency_ms": 300.0,
        "max_latency_ms": 500,
    }
    start = datetime.fromisoformat(body["from"])
    end = datetime.fromisoformat(body["to"])
    assert end - start == timedelta(days=30)


def test_stats_of_an_empty_window_are_zeros(tenant_client):
    totals = tenant_client.get(STATS).json()["totals"]
    assert totals["requests"] == 0
    assert totals["tokens"] == 0
    assert totals["cost_usd"] is None
    assert totals["avg_latency_ms"] is None


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("provider", {"anthropic": 1, "openai": 2}),
        ("model", {"claude-3-5-haiku": 1, "gpt-4o": 1, "gpt-4o-mini": 1}),
        ("endpoint", {"completion": 2, "test": 1}),
    ],
)
def test_stats_group_by(tenant_client, rows, group_by, expected):
    body = tenant_client.get(STATS, {"group_by": group_by}).json()
    assert body["group_by"] == group_by
    assert {g["key"]: g["requests"] for g in body["groups"]} == expected


def test_stats_group_by_provider_sums_each_group(tenant_client, rows):
    groups = {
        g["key"]: g for g in tenant_client.get(STATS, {"group_by": "provider"}).json()["groups"]
    }
    assert groups["openai"]["tokens"] == 330
    assert groups["openai"]["cost_usd"] == "0.03150000"
    assert groups["anthropic"]["failures"] == 1
    assert groups["anthropic"]["cost_usd"] is None
    assert groups["openai"]["avg_latency_ms"] == 200.0
    assert groups["openai"]["max_latency_ms"] == 300


def test_stats_totals_with_group_by_equal_the_totals_without(tenant_client, rows):
    plain = tenant_client.get(STATS).json()["totals"]
    for group_by in ("provider", "model", "day", "endpoint"):
        assert tenant_client.get(STATS, {"group_by": group_by}).json()["totals"] == plain


def test_stats_group_by_day_uses_utc_days_in_order(tenant_client, tenant):
    log(tenant, at=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    log(tenant, at=datetime(2026, 3, 1, 0, 1, tzinfo=UTC))
    log(tenant, at=datetime(2026, 3, 3, 12, tzinfo=UTC))
    body = tenant_client.get(
        STATS, {"group_by": "day", "from": "2026-03-01", "to": "2026-03-03"}
    ).json()
    assert [(g["key"], g["requests"]) for g in body["groups"]] == [
        ("2026-03-01", 2),
        ("2026-03-03", 1),
    ]


def test_stats_from_and_to_bound_the_window_and_a_bare_to_date_includes_its_day(
    tenant_client, tenant
):
    log(tenant, at=datetime(2026, 2, 28, 23, 0, tzinfo=UTC))
    log(tenant, at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    log(tenant, at=datetime(2026, 3, 2, 23, 59, tzinfo=UTC))
    log(tenant, at=datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    body = tenant_client.get(STATS, {"from": "2026-03-01", "to": "2026-03-02"}).json()
    assert body["totals"]["requests"] == 2
    assert body["from"] == "2026-03-01T00:00:00Z"
    assert body["to"] == "2026-03-03T00:00:00Z"
    exact = tenant_client.get(
        STATS, {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T23:59:00+00:00"}
    ).json()
    assert exact["totals"]["requests"] == 1


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "anthropic"}, 1),
        ({"model": "gpt-4o"}, 1),
        ({"endpoint": "test"}, 1),
        ({"success": "false"}, 1),
        ({"success": "true", "provider": "openai"}, 2),
    ],
)
def test_stats_filters(tenant_client, rows, params, expected):
    assert tenant_client.get(STATS, params).json()["totals"]["requests"] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "tenant"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"success": "maybe"}, "success"),
        ({"provider": "openia"}, "provider"),
        ({"endpoint": "nope"}, "endpoint"),
        ({"model": "bad\x00model"}, "model"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"from": "2999-01-01"}, "from"),
    ],
)
def test_stats_refuse_bad_parameters_with_400(tenant_client, params, field):
    error = assert_error(tenant_client.get(STATS, params), 400, "validation_error")
    assert field in error["details"], error


def test_stats_never_count_another_tenants_rows(other_tenant_client, rows):
    totals = other_tenant_client.get(STATS).json()["totals"]
    assert totals["requests"] == 1
    assert totals["tokens"] == 99999


def test_stats_are_aggregated_in_the_database(tenant_client, tenant, django_assert_num_queries):
    for _ in range(20):
        log(tenant)
    # authentication, then one grouped aggregate (totals are folded from the groups):
    # the same whatever the number of rows
    with django_assert_num_queries(2):
        body = tenant_client.get(STATS, {"group_by": "provider"}).json()
    assert body["totals"]["requests"] == 20


# -- logs ----------------------------------------------------------------------------------
def test_logs_list_the_tenants_rows_newest_first_paginated(tenant_client, rows):
    response = tenant_client.get(LOGS, {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert len(body["results"]) == 2
    created = [r["created_at"] for r in body["results"]]
    assert created == sorted(created, reverse=True)
    assert body["results"][0]["model"] == "gpt-4o-mini"
    assert set(body["results"][0]) >= {
        "id",
        "created_at",
        "provider",
        "model",
        "endpoint",
        "success",
        "error_type",
        "tokens_used",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
        "status_code",
        "provider_config",
        "metadata",
    }


def test_logs_never_show_another_tenants_rows(other_tenant_client, rows):
    body = other_tenant_client.get(LOGS).json()
    assert body["count"] == 1
    assert body["results"][0]["tokens_used"] == 99999


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "anthropic"}, 1),
        ({"success": "false"}, 1),
        ({"error_type": "rate_limit"}, 1),
        ({"endpoint": "test"}, 1),
        ({"model": "gpt-4o"}, 1),
        ({"from": "2000-01-01"}, 4),
    ],
)
def test_logs_filters(tenant_client, rows, params, expected):
    assert tenant_client.get(LOGS, params).json()["count"] == expected


def test_logs_filtered_by_another_tenants_config_are_empty(tenant_client, other_tenant):
    theirs = ProviderConfigFactory(tenant=other_tenant)
    log(other_tenant, provider_config=theirs)
    body = tenant_client.get(LOGS, {"provider_config": str(theirs.pk)}).json()
    assert body["count"] == 0


def test_logs_filter_by_own_config(tenant_client, tenant):
    config = ProviderConfigFactory(tenant=tenant)
    log(tenant, provider_config=config)
    log(tenant)
    body = tenant_client.get(LOGS, {"provider_config": str(config.pk)}).json()
    assert body["count"] == 1
    assert body["results"][0]["provider_config"] == str(config.pk)


def test_logs_redact_credentials_in_metadata(tenant_client, tenant):
    log(tenant, metadata={"request_id": "req_1", "authorization": "Bearer sk-test-fake-key-0001"})
    response = tenant_client.get(LOGS)
    assert "sk-test-fake-key-0001" not in response.content.decode()
    assert response.json()["results"][0]["metadata"]["request_id"] == "req_1"


@pytest.mark.parametrize(
    "params",
    [{"success": "yes please"}, {"provider_config": "nope"}, {"from": "soon"}, {"page_size": "x"}],
)
def test_logs_refuse_bad_filters(tenant_client, params):
    response = tenant_client.get(LOGS, params)
    if "page_size" in params:
        # DRF falls back to the default page size for an unusable page_size.
        assert response.status_code == 200
    else:
        assert_error(response, 400, "validation_error")


def test_logs_page_out_of_range_is_404(tenant_client):
    assert_error(tenant_client.get(LOGS, {"page": 5}), 404, "not_found")


def test_logs_run_a_fixed_number_of_queries(tenant_client, tenant, django_assert_num_queries):
    config = ProviderConfigFactory(tenant=tenant)
    for _ in range(10):
        log(tenant, provider_config=config)
    # authentication, count, page: no query per row
    with django_assert_num_queries(3):
        assert tenant_client.get(LOGS).json()["count"] == 10
