"""Every usage metric, defined once: its SQL over usage rows and over the daily rollup.

The stats selectors (raw and rollup paths), the rollup's day INSERT and the build totals
all aggregate through `METRICS`, so a metric means the same thing wherever it is read.
Only additive metrics are stored (sums, counts, a maximum): any set of groups or days can
then be combined exactly (`fold`), and the derived ones (`failures`, `avg_latency_ms`)
are computed at the end (`finish`).

Cost unknown (README, "Usage and cost", beside SPEC §5): a usage row's cost is unknown
when its `cost_usd` is null (no price for the model, or a success that reported no
usage); a failure that reported no usage is 0, never unknown. `unpriced_requests` counts
the unknown rows; `cost_usd` is the sum of the known costs (null when none is known);
a total cost is known only when no row of it is unknown (`known_total_cost`).
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from django.db.models import Count, Max, Q, Sum
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce


class Combine(Enum):
    """How one metric of several groups is combined into one."""

    SUM = "sum"  # never null (a count, or a sum coalesced to 0)
    KNOWN_SUM = "known_sum"  # the sum of the non-null values; null when all are
    MAX = "max"  # the largest non-null value; null when all are


@dataclass(frozen=True)
class Metric:
    raw: Combinable  # over llm_usage_logs rows
    rollup: Combinable  # over llm_usage_daily rows
    # The llm_usage_daily column it is stored in; None: derived from the rollup's key.
    column: str | None
    combine: Combine


# COUNT over a NOT NULL column rather than the id, and only columns of the
# llm_usage_tenant_stats index, so PostgreSQL answers with an index-only scan.
METRICS: dict[str, Metric] = {
    "requests": Metric(Count("success"), Coalesce(Sum("requests"), 0), "requests", Combine.SUM),
    "successes": Metric(
        Count("success", filter=Q(success=True)),
        Coalesce(Sum("requests", filter=Q(success=True)), 0),
        None,  # `success` is part of the rollup's key
        Combine.SUM,
    ),
    "tokens": Metric(
        Coalesce(Sum("tokens_used"), 0), Coalesce(Sum("tokens"), 0), "tokens", Combine.SUM
    ),
    "prompt_tokens": Metric(
        Coalesce(Sum("prompt_tokens"), 0),
        Coalesce(Sum("prompt_tokens"), 0),
        "prompt_tokens",
        Combine.SUM,
    ),
    "completion_tokens": Metric(
        Coalesce(Sum("completion_tokens"), 0),
        Coalesce(Sum("completion_tokens"), 0),
        "completion_tokens",
        Combine.SUM,
    ),
    "cost_usd": Metric(Sum("cost_usd"), Sum("cost_usd"), "cost_usd", Combine.KNOWN_SUM),
    "unpriced_requests": Metric(
        Count("success", filter=Q(cost_usd__isnull=True)),
        Coalesce(Sum("unpriced_requests"), 0),
        "unpriced_requests",
        Combine.SUM,
    ),
    "latency_sum": Metric(
        Coalesce(Sum("latency_ms"), 0),
        Coalesce(Sum("latency_sum"), 0),
        "latency_sum",
        Combine.SUM,
    ),
    "max_latency_ms": Metric(Max("latency_ms"), Max("latency_max"), "latency_max", Combine.MAX),
}

# Aggregates get a prefix so that their aliases cannot collide with the models' fields.
AGG = "agg_"


def raw_aggregates() -> dict:
    """Every metric over usage rows, as `annotate()`/`aggregate()` keyword arguments."""
    return {AGG + name: metric.raw for name, metric in METRICS.items()}


def rollup_aggregates() -> dict:
    """Every metric over rollup rows: the same names, in the same order, same meaning."""
    return {AGG + name: metric.rollup for name, metric in METRICS.items()}


def stored_aggregates() -> dict[str, tuple[str, Combinable]]:
    """alias → (rollup column, raw expression) of the metrics the rollup table stores."""
    return {
        AGG + name: (metric.column, metric.raw)
        for name, metric in METRICS.items()
        if metric.column is not None
    }


def unprefixed(row: dict) -> dict:
    return {key.removeprefix(AGG): value for key, value in row.items()}


def fold(rows: list[dict]) -> dict:
    """The metrics of several groups combined into one (a handful of groups, not rows)."""
    totals = {}
    for name, metric in METRICS.items():
        if metric.combine is Combine.SUM:
            totals[name] = sum(row[name] for row in rows)
            continue
        values = [row[name] for row in rows if row[name] is not None]
        if metric.combine is Combine.MAX:
            totals[name] = max(values) if values else None
        else:
            totals[name] = sum(values, Decimal(0)) if values else None
    return totals


def merge(rows: list[dict]) -> dict:
    """One group's partial rows (rollup days, edge days) as one row; UNION ALL may widen
    column types (a bigint sum next to a numeric one), so integers are integers again."""
    merged = fold(rows)
    for name, metric in METRICS.items():
        if metric.combine is not Combine.KNOWN_SUM and merged[name] is not None:
            merged[name] = int(merged[name])
    return merged


def finish(row: dict) -> dict:
    """The metrics as the stats answer them: derived ones added, the latency sum dropped."""
    row = dict(row)
    row["failures"] = row["requests"] - row["successes"]
    latency_sum = row.pop("latency_sum")
    row["avg_latency_ms"] = round(latency_sum / row["requests"], 1) if row["requests"] else None
    return row


def known_total_cost(row: dict) -> Decimal | None:
    """The total cost of `row`'s usage, or None when any of it is unknown (never a guess)."""
    if row["unpriced_requests"]:
        return None
    return row["cost_usd"] if row["cost_usd"] is not None else Decimal(0)
