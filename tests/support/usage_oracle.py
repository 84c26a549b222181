"""The reference computation of usage stats, for tests and bench only: one aggregate over
llm_usage_logs, written out independently of llm_providers/usage/metrics.py, so that the
rollup path (and the metric definitions) are checked against something they do not share.

(Moved from llm_providers.usage.selectors, where nothing but the tests and the bench used
it.)
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from llm_providers.models import UsageLog
from llm_providers.usage.selectors import STATS_GROUPS, InvalidWindow, default_window_start

# Aggregates get a prefix so that their aliases cannot collide with the model's fields.
AGG = "agg_"
SUMMED = (
    "requests",
    "successes",
    "tokens",
    "prompt_tokens",
    "completion_tokens",
    "unpriced_requests",
    "latency_sum",
)


def _metrics() -> dict:
    # COUNT over a NOT NULL column rather than the id, and only columns of the
    # llm_usage_tenant_stats index, so PostgreSQL answers with an index-only scan.
    # Additive metrics only (a latency sum, not an average): totals can then be folded
    # from the groups instead of scanning the window a second time.
    metrics = {
        "requests": Count("success"),
        "successes": Count("success", filter=Q(success=True)),
        "tokens": Coalesce(Sum("tokens_used"), 0),
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
        "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
        "cost_usd": Sum("cost_usd"),
        "unpriced_requests": Count("success", filter=Q(cost_usd__isnull=True)),
        "latency_sum": Coalesce(Sum("latency_ms"), 0),
        "max_latency_ms": Max("latency_ms"),
    }
    return {AGG + name: expression for name, expression in metrics.items()}


def _unprefixed(row: dict) -> dict:
    return {k.removeprefix(AGG): v for k, v in row.items()}


def _fold(rows: list[dict]) -> dict:
    """The totals of several groups' additive metrics (a handful of groups, not rows)."""
    totals = {name: sum(row[name] for row in rows) for name in SUMMED}
    costs = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
    totals["cost_usd"] = sum(costs, Decimal(0)) if costs else None
    maxima = [row["max_latency_ms"] for row in rows if row["max_latency_ms"] is not None]
    totals["max_latency_ms"] = max(maxima) if maxima else None
    return totals


def _finish(row: dict) -> dict:
    row = dict(row)
    row["failures"] = row["requests"] - row["successes"]
    latency_sum = row.pop("latency_sum")
    row["avg_latency_ms"] = round(latency_sum / row["requests"], 1) if row["requests"] else None
    return row


def usage_stats(queryset: QuerySet[UsageLog], *, group_by: str | None = None) -> dict:
    """Totals of `queryset` and, with `group_by`, one row per provider/model/day/endpoint.

    One aggregate query in the database either way; no usage row reaches Python.
    """
    queryset = queryset.order_by()
    if group_by is None:
        return {"totals": _finish(_unprefixed(queryset.aggregate(**_metrics()))), "groups": None}
    if group_by not in STATS_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(STATS_GROUPS)}")
    if group_by == "day":
        grouped = queryset.annotate(key=TruncDate("created_at", tzinfo=UTC)).values("key")
    else:
        grouped = queryset.values(key=F(group_by))
    rows = [_unprefixed(row) for row in grouped.annotate(**_metrics()).order_by("key")]
    return {"totals": _finish(_fold(rows)), "groups": [_finish(row) for row in rows]}


def usage_stats_in_window(
    queryset: QuerySet[UsageLog],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | None = None,
) -> dict:
    """`usage_stats` over [start, end), by default the 30 days up to now, with the window."""
    end = end or datetime.now(UTC)
    start = start or default_window_start(end)
    if start >= end:
        raise InvalidWindow("from must be earlier than to.")
    queryset = queryset.filter(created_at__gte=start, created_at__lt=end)
    return {
        "from": start,
        "to": end,
        "group_by": group_by,
        **usage_stats(queryset, group_by=group_by),
    }


def usage_stats_for_tenant(
    tenant, *, start: datetime, end: datetime, group_by: str | None = None
) -> dict:
    """Stats of `tenant` over [start, end): what the endpoint runs without extra filters."""
    return usage_stats_in_window(
        UsageLog.objects.for_tenant(tenant), start=start, end=end, group_by=group_by
    )
