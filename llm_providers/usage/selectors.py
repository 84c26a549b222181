"""Reads: provider status and usage statistics, computed in the database.

Every metric is defined once, in usage/metrics.py.
"""

import logging
from datetime import UTC, datetime, timedelta
from itertools import groupby

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from ..engine.resolution import resolve
from ..models import ProviderConfig, UsageDailyRollup, UsageLog, UsageRollupState
from . import metrics
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


def default_window_start(end: datetime) -> datetime:
    """The start of the default window ending at `end`, never before the first date."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return end - DEFAULT_STATS_WINDOW if end - earliest > DEFAULT_STATS_WINDOW else earliest


# -- stats: whole closed days from the daily rollup, the rest from the usage rows --------
# Filters the rollup can answer (its key columns); any other one reads the usage rows.
ROLLUP_FILTERS = ("provider", "model", "endpoint", "success", "error_type")
ROLLUP_ENQUEUED_KEY = "llm_usage_rollup_enqueued:{day}"
# Grouping keys get a prefix too, like the aggregates (metrics.AGG).
KEY = "key_"


def _key_expressions(group_by: tuple[str, ...], day) -> dict:
    """alias → expression of each grouping key (the day is `day`: a column or UTCDate)."""
    return {KEY + name: (day if name == "day" else F(name)) for name in group_by}


def _grouped(queryset: QuerySet, group_by: tuple[str, ...], day, aggregates: dict) -> QuerySet:
    queryset = queryset.order_by()
    if not group_by:
        # A constant is not grouped by: one row of totals (zeros on no rows), and the
        # same columns as the grouped branches so that they can be combined.
        grouped = queryset.values(**{KEY: Value(0)})
    else:
        grouped = queryset.values(**_key_expressions(group_by, day))
    return grouped.annotate(**aggregates)


def _groups(group_by: str | tuple[str, ...] | None) -> tuple[str, ...]:
    names = (group_by,) if isinstance(group_by, str) else tuple(group_by or ())
    unknown = [name for name in names if name not in STATS_GROUPS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"group_by must be distinct names of {', '.join(STATS_GROUPS)}")
    return names


def usage_stats(
    *,
    tenant=None,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | tuple[str, ...] | None = None,
    filters: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """Usage totals over [start, end) and, with `group_by`, one row per key.

    `tenant` None: every tenant (the admin's dashboard). `group_by`: one name or several
    of STATS_GROUPS, e.g. ("day", "provider"); each group is a dict with those names and
    the metrics (usage/metrics.py). Days are UTC days.

    [start, end) is split in three: the whole closed UTC days that are rolled up (read
    from llm_usage_daily), and before and after them the partial days, the open day and
    closed days not rolled up yet (read from llm_usage_logs). The watermark is read
    inside the same statement, so the parts are one UNION ALL of grouped aggregates,
    ordered by key in the database; Python only adds up each key's few partial rows.
    """
    names = _groups(group_by)
    now = now or timezone.now()
    end = end or now
    start = start or default_window_start(end)
    if start >= end:
        raise InvalidWindow("from must be earlier than to.")
    filters = {name: value for name, value in (filters or {}).items() if value is not None}
    raw = UsageLog.objects.all() if tenant is None else UsageLog.objects.for_tenant(tenant)
    raw = raw.filter(**filters)

    # Whole UTC days inside the window that are over: the only ones a rollup can hold.
    first_day = utc_today(start)
    if start > day_start(first_day):  # (no arithmetic before the day: from=0001-01-01)
        first_day += timedelta(days=1)
    last_day = min(utc_today(end), utc_today(now))  # exclusive
    if first_day >= last_day or not set(filters) <= set(ROLLUP_FILTERS):
        window = raw.filter(created_at__gte=start, created_at__lt=end)
        parts = [_grouped(window, names, UTCDate("created_at"), metrics.raw_aggregates())]
    else:
        _enqueue_rollup_once_a_day(now)
        # Rollup rows exist only for days before the watermark (usage_rollup_days refuses
        # later ones), so constant bounds suffice here.
        rollups = UsageDailyRollup.objects.all()
        if tenant is not None:
            rollups = rollups.for_tenant(tenant)
        rollups = rollups.filter(day__gte=first_day, day__lt=last_day, **filters)
        parts = _rollup_parts(raw, rollups, names, (start, end), (first_day, last_day))
    combined = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    keys = [KEY + name for name in names] or [KEY]
    rows = [metrics.unprefixed(row) for row in combined.order_by(*keys)]
    if not names:
        return {"totals": metrics.finish(metrics.merge(rows)), "groups": None}
    groups = []
    for key, partials in groupby(rows, key=lambda row: tuple(row[KEY + n] for n in names)):
        groups.append({**dict(zip(names, key, strict=True)), **metrics.merge(list(partials))})
    totals = metrics.finish(metrics.fold(groups))
    return {"totals": totals, "groups": [metrics.finish(group) for group in groups]}


def _rollup_parts(raw, rollups, names, window, days) -> list[QuerySet]:
    """The grouped aggregates of the window [start, end) whose whole days [first, last)
    are closed: rolled-up days from `rollups`, everything else from the usage rows."""
    (start, end), (first_day, last_day) = window, days
    lo, hi = day_start(first_day), day_start(last_day)
    watermark = UsageRollupState.objects.filter(pk=UsageRollupState.SINGLETON)
    rolled_until_at = Subquery(watermark.values("rolled_until_at")[:1])
    day_of_row = UTCDate("created_at")
    raw_aggregates = metrics.raw_aggregates()
    parts = [
        # Whole days in the window before the watermark: the rollup.
        _grouped(rollups, names, F("day"), metrics.rollup_aggregates()),
        # Whole days from the watermark on (none rolled up yet): the usage rows. One lower
        # bound (not two), so that it is the bound of the index range scan.
        _grouped(
            raw.filter(
                created_at__gte=Greatest(Value(lo), Coalesce(rolled_until_at, Value(lo))),
                created_at__lt=hi,
            ),
            names,
            day_of_row,
            raw_aggregates,
        ),
    ]
    if start < lo:  # the partial first day
        parts.append(
            _grouped(
                raw.filter(created_at__gte=start, created_at__lt=lo),
                names,
                day_of_row,
                raw_aggregates,
            )
        )
    if hi < end:  # the partial last day, or today
        parts.append(
            _grouped(
                raw.filter(created_at__gte=hi, created_at__lt=end),
                names,
                day_of_row,
                raw_aggregates,
            )
        )
    return parts


def usage_stats_for_window(
    tenant,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | None = None,
    filters: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """What GET /api/llm/usage/stats answers: `usage_stats` of one tenant, with the
    window, and each group's key as `key`."""
    if group_by is not None and group_by not in STATS_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(STATS_GROUPS)}")
    now = now or timezone.now()
    end = end or now
    start = start or default_window_start(end)
    stats = usage_stats(
        tenant=tenant, start=start, end=end, group_by=group_by, filters=filters, now=now
    )
    if group_by is not None:
        stats["groups"] = [{"key": group.pop(group_by), **group} for group in stats["groups"]]
    return {"from": start, "to": end, "group_by": group_by, **stats}


def usage_totals(*, tenant, usage_log_ids) -> dict:
    """The metrics of the given usage rows of `tenant` (other tenants' ids count nothing),
    as `usage_stats` totals, plus `latency_sum` and `known_cost_usd` (the total cost, or
    None when any row's cost is unknown: usage/metrics.py)."""
    rows = UsageLog.objects.for_tenant(tenant).filter(pk__in=usage_log_ids).order_by()
    totals = metrics.unprefixed(rows.aggregate(**metrics.raw_aggregates()))
    return {
        **metrics.finish(totals),
        "latency_sum": totals["latency_sum"],
        "known_cost_usd": metrics.known_total_cost(totals),
    }


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
