"""What admission (llm_providers.limits: admit + settle) costs per call.

Three arms, interleaved after a warm-up, timing `admit(...)` followed by `settle(...)`
exactly as the engine calls them (no provider, no usage row: those are the same with or
without limits):
- `none`: a tenant without limits (the default per-process concurrency cap only);
- `limits`: a tenant with every limit set (requests and tokens per minute, USD per day
  and month, max_concurrent), so both atomic steps run against the shared backend;
- `limits+price`: the same on a priced model (the reservation is priced, as for OpenAI).

    python bench/bench_admission.py                       # SQLite (a fresh file in /tmp)
    python bench/bench_admission.py --database-url postgres://user@127.0.0.1:5432/db
    python bench/bench_admission.py --redis-url redis://127.0.0.1:6379/0

Targets (issue 11): <= 1 ms p50 with limits on PostgreSQL, <= 0.5 ms on SQLite; no
measurable cost without limits.
"""

import argparse
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_completion import percentile, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--redis-url", help="use the Redis backend on this server")
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.redis_url:
        os.environ["CACHE_URL"] = args.redis_url
        os.environ["LLM_LIMITS_BACKEND"] = "redis"
    else:
        os.environ["LLM_LIMITS_BACKEND"] = "database"
    os.environ["LLM_LIMITS_RECONCILE_SECONDS"] = "0"
    vendor = setup_django(args.database_url)

    from llm_providers import limits
    from llm_providers.limits.services import limits_set
    from tenants.models import Tenant

    free, limited = "bench_free", "bench_limited"
    for tenant_id in (free, limited):
        Tenant.objects.update_or_create(id=tenant_id, defaults={"name": tenant_id})
    limits_set(
        tenant_id=limited,
        requests_per_minute=10**9,
        tokens_per_minute=10**12,
        usd_per_day=Decimal("9999999"),
        usd_per_month=Decimal("9999999"),
        max_concurrent=10**6,
    )
    messages = [{"role": "user", "content": "Design a system blueprint for a bicycle shop."}]

    def arm(tenant_id, provider, model):
        def run():
            admission = limits.admit(
                tenant_id,
                provider=provider,
                model=model,
                messages=messages,
                max_tokens=256,
                metadata={},
            )
            assert admission is None or admission.admitted, admission.error
            limits.settle(admission, tokens=60, cost=Decimal("0.0001"))

        return run

    arms = {
        "none": arm(free, "local", "gemma-3-270m"),
        "limits": arm(limited, "local", "gemma-3-270m"),
        "limits+price": arm(limited, "openai", "gpt-4o-mini"),
    }
    times = {name: [] for name in arms}
    for _ in range(200):
        for run in arms.values():
            run()
    for _ in range(args.n):
        for name, run in arms.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) * 1000)
    backend = "redis" if args.redis_url else vendor
    report = {
        name: {
            "p50_ms": round(statistics.median(values), 4),
            "p99_ms": round(percentile(values, 99), 4),
        }
        for name, values in times.items()
    }
    if args.json:
        print(json.dumps({"backend": backend, "n": args.n, **report}))
        return
    print(f"admission overhead per call, backend={backend}, n={args.n}")
    for name, figures in report.items():
        print(f"  {name:13s} p50 {figures['p50_ms']:.4f} ms   p99 {figures['p99_ms']:.4f} ms")


if __name__ == "__main__":
    main()
