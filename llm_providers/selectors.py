"""Reads for the REST API: provider status and usage statistics, computed in the database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from tenants.models import Tenant

from .models import KeyStatus, ProviderConfig, UsageLog
from .services import LLMService

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


def usage_logs_for_tenant(tenant: Tenant) -> QuerySet[UsageLog]:
    return UsageLog.objects.for_tenant(tenant)


def provider_status_for_tenant(tenant: Tenant) -> dict:
    """Whether an LLM is available for `tenant`, from which source, and its latest test.

    Availability is LLMService's own answer (same resolution as a real call, no network).
    A config whose key cannot be decrypted is reported as such: the service does not fall
    back to the environment behind the tenant's back.
    """
    service = LLMService(tenant.pk)
    described = service.describe()
    resolved = service.resolve()
    config = resolved.config
    if config is not None:
        key_status = str(config.key_status)
    elif resolved.source is not None:
        key_status = str(KeyStatus.OK if resolved.api_key else KeyStatus.MISSING)
    else:
        key_status = str(KeyStatus.MISSING)
    return {
        "available": described["available"],
        "source": described["source"] or "none",
        "provider": described["provider"],
        "model": described["model"],
        "key_status": key_status,
        "error": described["error"],
        "config": config,
        "last_test": _last_test(config),
    }


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


def usage_stats_in_window(
    queryset: QuerySet[UsageLog],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str | None = None,
) -> dict:
    """`usage_stats` over [start, end), by default the 30 days up to now, with the window."""
    end = end or timezone.now()
    start = start or end - DEFAULT_STATS_WINDOW
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
    tenant: Tenant, *, start: datetime, end: datetime, group_by: str | None = None
) -> dict:
    """Stats of `tenant` over [start, end): what the endpoint runs without extra filters."""
    return usage_stats_in_window(
        usage_logs_for_tenant(tenant), start=start, end=end, group_by=group_by
    )
