"""One definition of every usage metric (usage/metrics.py), read the same way everywhere:
the stats raw and rollup paths, the rollup's INSERT, the build totals, and the
multi-key `usage_stats` the admin dashboard can call."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from llm_providers.models import UsageDailyRollup, UsageLog
from llm_providers.usage import metrics, rollup
from llm_providers.usage.dashboard import usage_by_day_and_provider
from llm_providers.usage.selectors import usage_stats, usage_totals
from tests.factories import TenantFactory, UsageLogFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 13, 30, tzinfo=UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def log(tenant, created_at, **fields):
    row = UsageLogFactory(tenant=tenant, **fields)
    UsageLog.objects.filter(pk=row.pk).update(created_at=created_at)
    return row


def test_every_stored_metric_names_a_rollup_column_and_the_rest_are_derived_from_the_key():
    columns = {f.name for f in UsageDailyRollup._meta.concrete_fields}
    stored = {column for column, _raw in metrics.stored_aggregates().values()}
    assert stored <= columns
    assert [n for n, m in metrics.METRICS.items() if m.column is None] == ["successes"]


def test_known_total_cost_is_unknown_when_any_row_is_unpriced_and_zero_when_none_cost():
    assert metrics.known_total_cost({"unpriced_requests": 0, "cost_usd": None}) == 0
    assert metrics.known_total_cost({"unpriced_requests": 0, "cost_usd": Decimal("2")}) == 2
    assert metrics.known_total_cost({"unpriced_requests": 1, "cost_usd": Decimal("2")}) is None


def test_usage_totals_count_the_given_rows_of_the_tenant_only(tenant, other_tenant):
    mine = log(tenant, at(3), tokens_used=10, cost_usd=Decimal("0.5"), latency_ms=100)
    free = log(tenant, at(3), tokens_used=0, cost_usd=Decimal("0"), latency_ms=20)
    theirs = log(other_tenant, at(3), tokens_used=999, cost_usd=Decimal("9"))
    log(tenant, at(3), tokens_used=777)  # not asked for

    totals = usage_totals(tenant=tenant, usage_log_ids=[mine.pk, free.pk, theirs.pk])

    assert (totals["requests"], totals["tokens"], totals["latency_sum"]) == (2, 10, 120)
    assert totals["cost_usd"] == totals["known_cost_usd"] == Decimal("0.5")
    assert totals["unpriced_requests"] == 0


def test_a_row_without_tokens_and_without_a_price_makes_the_totals_cost_unknown(tenant):
    # A success that reported no usage: its cost is unknown, even with 0 tokens (the
    # build loop used to count such a row as free).
    priced = log(tenant, at(3), tokens_used=10, cost_usd=Decimal("0.5"))
    unreported = log(tenant, at(3), tokens_used=0, cost_usd=None, success=True)

    totals = usage_totals(tenant=tenant, usage_log_ids=[priced.pk, unreported.pk])

    assert totals["unpriced_requests"] == 1
    assert totals["cost_usd"] == Decimal("0.5")  # the known part, as the stats say
    assert totals["known_cost_usd"] is None


def test_stats_by_day_and_provider_over_all_tenants_match_the_dashboard_query(settings):
    settings.TIME_ZONE = "UTC"  # the dashboard's days are local days; the stats' are UTC
    acme, globex = TenantFactory(id="acme"), TenantFactory(id="globex")
    log(acme, at(3, 1), provider="openai", tokens_used=100, cost_usd=Decimal("0.01"))
    log(
        acme,
        at(3, 23),
        provider="openai",
        tokens_used=50,
        cost_usd=Decimal("0"),
        success=False,
        error_type="timeout",
    )
    log(globex, at(3, 5), provider="openai", tokens_used=5, cost_usd=None)
    log(acme, at(4), provider="anthropic", tokens_used=30, cost_usd=Decimal("0.02"))
    log(globex, at(10, 9), provider="groq", tokens_used=7)  # today
    rollup.usage_rollup_pending(now=NOW)  # days 3 and 4 from the rollup, today raw
    assert UsageDailyRollup.objects.filter(day=date(2026, 3, 3)).count() == 3

    stats = usage_stats(start=at(1, 0), end=NOW, group_by=("day", "provider"), now=NOW)
    dashboard = list(usage_by_day_and_provider(start=date(2026, 3, 1), end=date(2026, 3, 10)))

    got = [
        (g["day"], g["provider"], g["requests"], g["tokens"], g["cost_usd"], g["failures"])
        for g in stats["groups"]
    ]
    assert got == [
        (r["day"], r["provider"], r["requests"], r["tokens"], r["cost"], r["errors"])
        for r in dashboard
    ]
    assert got[0] == (date(2026, 3, 3), "openai", 3, 155, Decimal("0.01"), 1)
    assert stats["groups"][0]["unpriced_requests"] == 1
    assert stats["totals"]["requests"] == 5


def test_usage_stats_refuses_unknown_or_repeated_groups(tenant):
    for group_by in (("day", "colour"), ("day", "day")):
        with pytest.raises(ValueError, match="group_by"):
            usage_stats(tenant=tenant, group_by=group_by, end=NOW, now=NOW)


def test_one_tenant_grouped_by_two_keys_adds_up_to_its_ungrouped_totals(tenant, other_tenant):
    for day in (2, 5, 9, 10):
        log(tenant, at(day), provider="openai", model="a", tokens_used=day, cost_usd=1)
        log(tenant, at(day), provider="groq", model="b", tokens_used=1, cost_usd=None)
    log(other_tenant, at(5), tokens_used=1000)
    rollup.usage_rollup_pending(now=NOW)

    window = {"start": at(1, 6), "end": NOW, "now": NOW}
    grouped = usage_stats(tenant=tenant, group_by=("provider", "model"), **window)
    plain = usage_stats(tenant=tenant, **window)

    assert grouped["totals"] == plain["totals"]
    assert [(g["provider"], g["model"], g["tokens"]) for g in grouped["groups"]] == [
        ("groq", "b", 4),
        ("openai", "a", 26),
    ]
    assert plain["totals"]["unpriced_requests"] == 4
    assert plain["totals"]["requests"] == 8 and plain["groups"] is None
    assert plain["totals"]["cost_usd"] == 4
