"""GET /healthz for load balancers: process, database and the latest provider validation."""

import logging
import time

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from llm_providers.limits.breaker import health_counts
from llm_providers.usage import spool
from llm_providers.usage.selectors import enqueue_daily_usage_task
from llm_providers.validation.health import latest_validation

logger = logging.getLogger(__name__)


def database_check() -> dict:
    started = time.monotonic()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("healthz: database check failed (%s)", type(exc).__name__)
        return {"status": "fail"}
    return {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000)}


def validation_check() -> dict:
    entry = latest_validation()
    if entry is None:
        return {"status": "not_run"}
    if entry.get("mode") == "off":
        return {"status": "off", "ran_at": entry.get("ran_at")}
    problems = entry.get("unreachable", 0) + entry.get("unusable", 0)
    counts = {k: entry.get(k, 0) for k in ("reachable", "unreachable", "unusable", "total")}
    return {
        "status": "degraded" if problems else "ok",
        "ran_at": entry.get("ran_at"),
        "mode": entry.get("mode"),
        "duration_ms": entry.get("duration_ms"),
        **counts,
    }


def usage_writes_check() -> dict:
    """Whether usage rows are being written (issue 15.5): `degraded` while writes fail or
    rows wait in the local spool; the probe also writes spooled rows back."""
    pending = spool.pending_files()
    if pending and not spool.failing_now():
        try:
            spool.replay()
        except Exception:
            logger.warning("healthz: usage spool replay failed", exc_info=True)
        pending = spool.pending_files()
    if spool.failing_now() or pending:
        return {"status": "degraded", "spool_files": len(pending), "failing": spool.failing_now()}
    return {"status": "ok"}


def queue_daily_usage_work() -> None:
    """With retention on, load balancers' probes make sure the daily usage task is queued.

    A cache entry per UTC day (and one task row a day): never the work itself, and never
    a reason for the probe to fail.
    """
    if not settings.LLM_USAGE_RETENTION_DAYS:
        return
    try:
        enqueue_daily_usage_task()
    except Exception:
        logger.warning("healthz: could not queue the daily usage task", exc_info=True)


@never_cache
@require_safe
def healthz(request):
    database = database_check()
    if database["status"] != "ok":
        return JsonResponse({"status": "fail", "checks": {"database": database}}, status=503)
    queue_daily_usage_work()
    validation = validation_check()
    usage_writes = usage_writes_check()
    degraded = "degraded" in (validation["status"], usage_writes["status"])
    return JsonResponse(
        {
            "status": "degraded" if degraded else "ok",
            "checks": {
                "process": {"status": "ok"},
                "database": database,
                "validation": validation,
                # Provider configs skipped by their circuit breaker: a provider's outage,
                # not this instance's, so it does not change `status`.
                "breakers": health_counts(),
                "usage_writes": usage_writes,
            },
        }
    )
