"""A worker process for the limits tests: LLMService calls for one tenant, on a signal.

Started by tests/limits with the test database's DATABASE_URL; reads its job from the
LIMITS_JOB environment variable (JSON), prints `ready`, waits for a line on stdin (so
that every worker starts at once), runs the job and prints one JSON line per call.

Jobs: {"mode": "calls", "calls": N, "threads": T, "max_tokens": M, "prompt": "…"}
      {"mode": "hold"}: admit one call, print `held`, then wait to be killed.
`LIMITS_CLOCK_SHIFT` (seconds) shifts the admission clock (llm_providers.limits.clock).
"""

import json
import os
import sys
import threading
import time


def main() -> None:
    import django

    django.setup()
    from llm_providers import limits
    from llm_providers.engine.service import LLMService
    from llm_providers.limits import clock

    shift = float(os.environ.get("LIMITS_CLOCK_SHIFT", "0") or 0)
    if shift:
        clock.set_clock(lambda: time.time() + shift)
    job = json.loads(os.environ["LIMITS_JOB"])
    tenant_id = job["tenant"]
    print("ready", flush=True)
    sys.stdin.readline()
    lock = threading.Lock()

    if job["mode"] == "hold":
        admission = limits.admit(
            tenant_id,
            provider="local",
            model="gemma-3-270m",
            messages=[{"role": "user", "content": "hold"}],
            max_tokens=1,
            metadata={},
        )
        print(json.dumps({"held": admission is not None and admission.admitted}), flush=True)
        threading.Event().wait()  # until killed
        return

    def run(count: int) -> None:
        try:
            calls(count)
        except Exception as exc:  # reported to the test, which fails on it
            import traceback

            with lock:
                print(json.dumps({"exception": traceback.format_exc()}), flush=True)
            raise SystemExit(1) from exc

    def calls(count: int) -> None:
        service = LLMService(tenant_id)
        for _ in range(count):
            before = clock.now()
            result = service.generate_completion(
                job.get("prompt", "hi"), max_tokens=job.get("max_tokens", 2)
            )
            line = {
                "success": result.success,
                "error": result.error.type if result.error else None,
                "retry_after": result.error.retry_after if result.error else None,
                "before": before,
                "clock": clock.now(),
                "cost": None if result.cost_usd is None else str(result.cost_usd),
            }
            with lock:
                print(json.dumps(line), flush=True)

    threads = max(1, int(job.get("threads", 1)))
    per_thread = [job["calls"] // threads + (i < job["calls"] % threads) for i in range(threads)]
    workers = [threading.Thread(target=run, args=(n,)) for n in per_thread]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    main()
