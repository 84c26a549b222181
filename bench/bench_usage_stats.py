"""Benchmark: GET /api/llm/usage/stats over 30 days for a tenant with 1,000,000 usage rows.

Ten tenants share the usage table; one of them has --rows rows spread over --spread-days
days, the nine others --other-rows each. Two arms are timed on the tenant's 30-day window,
once for the totals and once per group_by; p50 and p95 in milliseconds:

- raw: `usage_stats_for_tenant`, the aggregate over llm_usage_logs alone (the reference);
- rollup: `usage_stats_for_window`, what the endpoint runs: whole closed UTC days from
  llm_usage_daily, filled first with `usage_rollup_rebuild()` (timed too), the edge days
  and today from llm_usage_logs.

    # all 1M rows inside the 30-day window (the worst case)
    python bench/bench_usage_stats.py --spread-days 30

    # SQLite (a throwaway file)
    python bench/bench_usage_stats.py
    # PostgreSQL
    DATABASE_URL=postgres://postgres@127.0.0.1:55432/switchyard_bench \\
        python bench/bench_usage_stats.py

The data is loaded once (COPY on PostgreSQL, executemany on SQLite) and reused by later
runs with the same --rows/--spread-days; --reload forces a fresh load.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/switchyard_bench_usage.sqlite3")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from llm_providers.api.serializers import UsageStatsSerializer  # noqa: E402
from llm_providers.models import UsageLog  # noqa: E402
from llm_providers.usage.rollup import usage_rollup_rebuild  # noqa: E402
from llm_providers.usage.selectors import STATS_GROUPS, usage_stats_for_window  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tests.support.usage_oracle import usage_stats_for_tenant  # noqa: E402

BIG_TENANT = "bench_big"
COLUMNS = (
    "tenant_id",
    "provider",
    "model",
    "endpoint",
    "tokens_used",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "success",
    "error_type",
    "error_message",
    "created_at",
    "metadata",
)
MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"],
    "anthropic": ["claude-3-5-haiku-latest", "claude-sonnet-4-5"],
    "groq": ["llama-3.3-70b-versatile"],
    "local": ["qwen2.5-7b-instruct", "llama-3.1-8b"],
}
PROVIDERS = list(MODELS)
ENDPOINTS = ["completion"] * 6 + ["chat"] * 3 + ["test", "validation"]


def rows_for(tenant_id: str, count: int, spread_days: int, now: datetime, rng: random.Random):
    spread = spread_days * 86400
    for _ in range(count):
        provider = rng.choice(PROVIDERS)
        prompt = rng.randint(5, 2000)
        completion = rng.randint(1, 800)
        success = rng.random() > 0.05
        cost = None if provider == "local" else Decimal(rng.randint(1, 50000)) / Decimal(10**8)
        yield (
            tenant_id,
            provider,
            rng.choice(MODELS[provider]),
            rng.choice(ENDPOINTS),
            prompt + completion if success else 0,
            prompt if success else 0,
            completion if success else 0,
            cost if success else None,
            rng.randint(80, 6000),
            success,
            "" if success else "rate_limit",
            "" if success else "Rate limit reached.",
            now - timedelta(seconds=rng.random() * spread),
            "{}",
        )


def bulk_insert(rows) -> None:
    if connection.vendor == "postgresql":
        sql = f"COPY llm_usage_logs ({', '.join(COLUMNS)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        sql = f"INSERT INTO llm_usage_logs ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        batch = []
        with connection.cursor() as cursor:
            for row in rows:
                # SQLite stores datetimes as text and decimals as numbers.
                row = list(row)
                row[7] = None if row[7] is None else str(row[7])
                row[12] = row[12].isoformat(sep=" ").replace("+00:00", "")
                batch.append(row)
                if len(batch) == 50_000:
                    cursor.executemany(sql, batch)
                    batch.clear()
            if batch:
                cursor.executemany(sql, batch)


def load(args) -> None:
    marker = f"bench rows={args.rows} spread={args.spread_days} other={args.other_rows}"
    big = Tenant.objects.filter(pk=BIG_TENANT).first()
    if big is not None and big.name == marker and not args.reload:
        print(f"reusing loaded data ({marker})")
        return
    print(f"loading: {marker}")
    UsageLog.objects.all().delete()
    Tenant.objects.filter(pk__startswith="bench_").delete()
    tenants = [Tenant.objects.create(id=BIG_TENANT, name="loading")]
    tenants += [Tenant.objects.create(id=f"bench_{i}", name=f"bench {i}") for i in range(1, 10)]
    rng = random.Random(42)
    now = datetime.now(UTC)
    started = time.perf_counter()
    bulk_insert(rows_for(BIG_TENANT, args.rows, args.spread_days, now, rng))
    for tenant in tenants[1:]:
        bulk_insert(rows_for(tenant.pk, args.other_rows, args.spread_days, now, rng))
    print(f"  inserted in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The visibility map makes index-only scans possible (autovacuum does the
            # same in production for an insert-mostly table).
            cursor.execute("VACUUM ANALYZE llm_usage_logs")
        else:
            cursor.execute("ANALYZE")
    Tenant.objects.filter(pk=BIG_TENANT).update(name=marker)
    print(f"  vacuum/analyze in {time.perf_counter() - started:.1f} s")


def timed(fn, repeat: int) -> list[float]:
    fn()
    fn()  # warm caches: the figure is the steady state of a serving process
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def explain(selector, tenant, start, end, group_by) -> str:
    with CaptureQueriesContext(connection) as ctx:
        selector(tenant, start=start, end=end, group_by=group_by)
    sql = ctx.captured_queries[-1]["sql"]
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) "
        if connection.vendor == "postgresql"
        else "EXPLAIN QUERY PLAN "
    )
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql)
        return "\n".join("    " + " | ".join(str(c) for c in row) for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--other-rows", type=int, default=20_000)
    parser.add_argument("--spread-days", type=int, default=365)
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--arms", default="raw,rollup", help="raw, rollup or both (default)")
    args = parser.parse_args()
    arms = {"raw": usage_stats_for_tenant, "rollup": usage_stats_for_window}
    arms = {name: arms[name] for name in args.arms.split(",")}

    call_command("migrate", verbosity=0)
    load(args)
    tenant = Tenant.objects.get(pk=BIG_TENANT)
    end = datetime.now(UTC)
    start = end - timedelta(days=args.window_days)
    in_window = (
        UsageLog.objects.for_tenant(tenant)
        .filter(created_at__gte=start, created_at__lt=end)
        .count()
    )
    print(
        f"{connection.vendor}: tenant rows={args.rows:,} over {args.spread_days} days, "
        f"table rows={UsageLog.objects.count():,}, {args.window_days}-day window rows={in_window:,}"
    )
    if "rollup" in arms:
        started = time.perf_counter()
        days = usage_rollup_rebuild()
        fill = time.perf_counter() - started
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("VACUUM ANALYZE llm_usage_daily")
            else:
                cursor.execute("ANALYZE llm_usage_daily")
            cursor.execute(
                "SELECT COUNT(*) FROM llm_usage_daily WHERE tenant_id = %s", [BIG_TENANT]
            )
            big_rollups = cursor.fetchone()[0]
        print(
            f"rollup: {len(days)} closed days filled in {fill:.1f} s "
            f"({fill / max(len(days), 1) * 1000:.0f} ms a day), "
            f"{big_rollups:,} rollup rows for the big tenant"
        )
    header = "".join(f"{name + ' p50':>14}{name + ' p95':>14}" for name in arms)
    print(f"{'query':<22}{header}")
    for group_by in (None, *STATS_GROUPS):
        label = f"group_by={group_by}" if group_by else "totals"
        line = f"{label:<22}"
        for selector in arms.values():
            samples = timed(
                lambda g=group_by, s=selector: s(tenant, start=start, end=end, group_by=g),
                args.repeat,
            )
            p95 = statistics.quantiles(samples, n=20)[18]
            line += f"{statistics.median(samples):>14.1f}{p95:>14.1f}"
        print(line, flush=True)
        if args.explain:
            for selector in arms.values():
                print(explain(selector, tenant, start, end, group_by))
    if set(arms) == {"raw", "rollup"}:
        for group_by in (None, *STATS_GROUPS):
            raw = usage_stats_for_tenant(tenant, start=start, end=end, group_by=group_by)
            fast = usage_stats_for_window(tenant, start=start, end=end, group_by=group_by)
            if connection.vendor != "postgresql":
                # SQLite sums decimals as floats: compare what the API returns.
                raw, fast = UsageStatsSerializer(raw).data, UsageStatsSerializer(fast).data
            assert raw == fast, f"rollup and raw stats differ for group_by={group_by}"
        print("rollup and raw stats are identical for every query")


if __name__ == "__main__":
    main()
