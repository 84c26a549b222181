"""Reads for the REST API: provider status and usage statistics, computed in the database."""

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Max, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from ..engine.resolution import resolve
from ..models import ProviderConfig, UsageDailyRollup, UsageLog, UsageRollupState
from .rollup import day_start, rollable_until, utc_today

logger = logging.getLogger(__name__)

STATS_GROUPS = ("provider", "model", "day", "endpoint")


class InvalidWindow(ValueError):
    """The stats window is empty or reversed."""


# Stats without a start cover this much time up to their end (default: now).
DEFAULT_STATS_WINDOW = timedelta(days=30)


class UTCDate(TruncDate):
    """The UTC calendar day of a timestamp.

    On SQLite, Django's TruncDate calls a Python function per row; datetimes are stored
    there as UTC text, so SQLite's own date() gives the same day several times faster.
    """

    def __init__(self, expression, **extra):
        super().__init__(expression, tzinfo=UTC, **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.lhs)
        return f"date({sql})", params


def usage_logs_for_tenant(tenant) -> QuerySet[UsageLog]:
    return UsageLog.objects.for_tenant(tenant)


def provider_status_for_tenant(tenant) -> dict:
    """Whether an LLM is available for `tenant`, from which source, and its latest test.

    Availability is the resolution a real call makes (engine/resolution.py, no network).
    A config whose key cannot be decrypted is reported as such: calls do not fall back
    to the environment behind the tenant's back.
    """
    resolved = resolve(tenant.pk)
    described = resolved.describe()
    config = resolved.config
    key_status = str(resolved.key_status)
    return {
        "available": described["available"],
        "source": described["source"] or "none",
        "provider": described["provider"],
        "model": described["model"],
        "key_status": key_status,
        "error": described["error"],
        "config": config,
        "last_test": _last_test(config),
        "limits": _limits_status(tenant.pk),
        "breaker": _breaker_state(resolved),
    }


def _breaker_state(resolved) -> dict | None:
    from ..limits import breaker

    key = breaker.breaker_key(resolved)
    return breaker.state(key) if key is not None else None


def _limits_status(tenant_id: str) -> dict | None:
    from ..limits.status import limits_status  # limits imports usage.pricing

    return limits_status(tenant_id)


def _last_test(config: ProviderConfig | None) -> dict | None:
    if config is None or config.last_tested is None:
        return None
    return {
        "tested_at": config.last_tested,
        "success": config.last_test_success,
        "latency_ms": config.test_latency_ms,
        "error": config.last_error or None,
    }


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
        grouped = queryset.annotate(key=UTCDate("created_at")).values("key")
    else:
        grouped = queryset.values(key=F(group_by))
    rows = [_unprefixed(row) for row in grouped.annotate(**_metrics()).order_by("key")]
    return {"totals": _finish(_fold(rows)), "groups": [_finish(row) for row in rows]}


def default_window_start(end: datetime) -> datetime:
    """The start of the default window ending at `end`, never before the first date."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return end - DEFAULT_STATS_WINDOW if end - earliest > DEFAULT_STATS_WINDOW else earliest


def usage_stats_in_window(
    queryset: QuerySet[UsageLog],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | None = None,
) -> dict:
    """`usage_stats` over [start, end), by default the 30 days up to now, with the window."""
    end = end or timezone.now()
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
        usage_logs_for_tenant(tenant), start=start, end=end, group_by=group_by
    )


# -- stats through the daily rollup ------------------------------------------------------
# Filters the rollup can answer (its key columns); any other one reads the usage rows.
ROLLUP_FILTERS = ("provider", "model", "endpoint", "success", "error_type")
ROLLUP_ENQUEUED_KEY = "llm_usage_rollup_enqueued:{day}"


def _rollup_metrics() -> dict:
    """`_metrics()` over llm_usage_daily rows: same names, same order, same meaning."""
    metrics = {
        "requests": Coalesce(Sum("requests"), 0),
        "successes": Coalesce(Sum("requests", filter=Q(success=True)), 0),
        "tokens": Coalesce(Sum("tokens"), 0),
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
        "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
        "cost_usd": Sum("cost_usd"),
        "unpriced_requests": Coalesce(Sum("unpriced_requests"), 0),
        "latency_sum": Coalesce(Sum("latency_sum"), 0),
        "max_latency_ms": Max("latency_max"),
    }
    return {AGG + name: expression for name, expression in metrics.items()}


def _grouped(queryset: QuerySet, group_by: str | None, day_key, metrics: dict) -> QuerySet:
    queryset = queryset.order_by()
    if group_by is None:
        # A constant is not grouped by: one row of totals (zeros on no rows), and the
        # same columns as the grouped branches so that they can be combined.
        grouped = queryset.values(key=Value(0))
    elif group_by == "day":
        grouped = queryset.values(key=day_key)
    else:
        grouped = queryset.values(key=F(group_by))
    return grouped.annotate(**metrics)


def _merge(rows: list[dict]) -> dict:
    """One group's partial rows (rollup days, edge days) as one row of `_metrics()`."""
    merged = _fold(rows)
    # UNION ALL may widen the column types (a bigint sum next to a numeric one).
    for name in SUMMED:
        merged[name] = int(merged[name])
    if merged["max_latency_ms"] is not None:
        merged["max_latency_ms"] = int(merged["max_latency_ms"])
    return merged


def usage_stats_for_window(
    tenant,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | None = None,
    filters: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """What GET /api/llm/usage/stats answers; the same result as `usage_stats_in_window`.

    [start, end) is split in three: the whole closed UTC days that are rolled up (read
    from llm_usage_daily), and before and after them the partial days, the open day and
    closed days not rolled up yet (read from llm_usage_logs). The watermark is read
    inside the same statement, so the parts are one UNION ALL of grouped aggregates,
    ordered by key in the database; Python only adds up each key's few partial rows.
    """
    if group_by is not None and group_by not in STATS_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(STATS_GROUPS)}")
    now = now or timezone.now()
    end = end or now
    start = start or default_window_start(end)
    if start >= end:
        raise InvalidWindow("from must be earlier than to.")
    filters = {name: value for name, value in (filters or {}).items() if value is not None}
    raw = usage_logs_for_tenant(tenant).filter(**filters)
    window = {"from": start, "to": end, "group_by": group_by}

    # Whole UTC days inside the window that are over: the only ones a rollup can hold.
    first_day = utc_today(start)
    if start > day_start(first_day):  # (no arithmetic before the day: from=0001-01-01)
        first_day += timedelta(days=1)
    last_day = min(utc_today(end), utc_today(now))  # exclusive
    if first_day >= last_day or not set(filters) <= set(ROLLUP_FILTERS):
        return {
            **window,
            **usage_stats(raw.filter(created_at__gte=start, created_at__lt=end), group_by=group_by),
        }
    _enqueue_rollup_once_a_day(now)

    lo, hi = day_start(first_day), day_start(last_day)
    watermark = UsageRollupState.objects.filter(pk=UsageRollupState.SINGLETON)
    rolled_until_at = Subquery(watermark.values("rolled_until_at")[:1])
    day_of_row = UTCDate("created_at")
    raw_metrics = _metrics()
    parts = [
        # Whole days in the window before the watermark: the rollup.
        _grouped(
            # Rollup rows exist only for days before the watermark (usage_rollup_days
            # refuses later ones), so constant bounds suffice here.
            UsageDailyRollup.objects.for_tenant(tenant).filter(
                day__gte=first_day, day__lt=last_day, **filters
            ),
            group_by,
            F("day"),
            _rollup_metrics(),
        ),
        # Whole days from the watermark on (none rolled up yet): the usage rows.
        _grouped(
            # One lower bound (not two), so that it is the bound of the index range scan.
            raw.filter(
                created_at__gte=Greatest(Value(lo), Coalesce(rolled_until_at, Value(lo))),
                created_at__lt=hi,
            ),
            group_by,
            day_of_row,
            raw_metrics,
        ),
    ]
    if start < lo:  # the partial first day
        parts.append(
            _grouped(
                raw.filter(created_at__gte=start, created_at__lt=lo),
                group_by,
                day_of_row,
                raw_metrics,
            )
        )
    if hi < end:  # the partial last day, or today
        parts.append(
            _grouped(
                raw.filter(created_at__gte=hi, created_at__lt=end),
                group_by,
                day_of_row,
                raw_metrics,
            )
        )
    combined = parts[0].union(*parts[1:], all=True).order_by("key")
    rows = [_unprefixed(row) for row in combined]
    if group_by is None:
        return {**window, "totals": _finish(_merge(rows)), "groups": None}
    groups = []
    for key, partials in groupby(rows, key=lambda row: row["key"]):
        groups.append({"key": key, **_merge(list(partials))})
    return {**window, "totals": _finish(_fold(groups)), "groups": [_finish(g) for g in groups]}


def enqueue_daily_usage_task(now: datetime | None = None) -> None:
    """Queue the daily usage task (rollup, then retention) if this UTC day has not yet.

    The stats endpoint calls it; with LLM_USAGE_RETENTION_DAYS set, /healthz too, so that
    retention runs every day even where nobody asks for stats.
    """
    _enqueue_rollup_once_a_day(now or timezone.now())


def _enqueue_rollup_once_a_day(now: datetime) -> None:
    """Queue the rollup task for the closed days, at most once per UTC day and cache.

    Only a cache entry and, after the commit, one task row: the rolling itself runs in
    the worker, never in the request. The task is a no-op when nothing is pending.
    """
    # Keyed by the newest day that may be rolled up, so the day's task comes after
    # yesterday has closed (plus the grace period), not at 00:00:01.
    if cache.add(ROLLUP_ENQUEUED_KEY.format(day=rollable_until(now)), 1, timeout=2 * 86400):
        transaction.on_commit(_enqueue_rollup, robust=True)


def _enqueue_rollup() -> None:
    from .tasks import roll_up_usage  # tasks imports the rollup services

    roll_up_usage.enqueue()
