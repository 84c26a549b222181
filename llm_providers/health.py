"""GET /healthz for load balancers: process, database and the latest provider validation.

Under ASGI the probe must answer while the worker's event loop is crowded (issue 9). At
1,024 open calls a probe that waited for its own checks took five turns of that loop (its
start, its empty body, and three to bring a thread's result back), each queued behind
every open call's work: p99 0.4-0.7 s for a `SELECT 1` of 0-14 ms. So under ASGI the checks
(the database's `SELECT 1`, the cache reads, the spool's files) are re-run on a thread of
their own (`HealthMonitor`: one thread, its own database connection, looked after as
Django does at a request's start) every LLM_HEALTHZ_INTERVAL_SECONDS while probes come,
and a probe answers with the latest result without waiting: one turn of the loop, its
start, which still shows that the worker answers. A probe never gets a result older than
the interval plus LLM_HEALTHZ_TIMEOUT_SECONDS: with no result that recent (the first
probe, or after a minute without probes) it waits for the next one, at most
LLM_HEALTHZ_TIMEOUT_SECONDS; a check running longer than that is a 503 `fail` at once, so
a stuck database fails probes fast instead of hanging them. Spooled usage rows are written
back on a second thread of its own, in the background: a long replay neither delays nor
fails a probe. Under WSGI (the test client, gunicorn) the same checks run inline, the
replay included, as they always have.
"""

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, close_old_connections, connections
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


def replay_spool() -> None:
    try:
        spool.replay()
    except Exception:
        logger.warning("healthz: usage spool replay failed", exc_info=True)


def usage_writes_check(replay=replay_spool) -> dict:
    """Whether usage rows are being written (issue 15.5): `degraded` while writes fail or
    rows wait in the local spool; the probe also has spooled rows written back (`replay`:
    inline, or handed to a thread that does it in the background)."""
    pending = spool.pending_files()
    if pending and not spool.failing_now():
        replay()
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


def health_report(replay=replay_spool) -> tuple[int, dict]:
    """(HTTP status, body) of a probe: every check, sync (it queries and reads the cache)."""
    database = database_check()
    if database["status"] != "ok":
        return 503, {"status": "fail", "checks": {"database": database}}
    queue_daily_usage_work()
    validation = validation_check()
    usage_writes = usage_writes_check(replay)
    degraded = "degraded" in (validation["status"], usage_writes["status"])
    return 200, {
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


class ProbeThread:
    """A one-thread executor for one kind of job, one job at a time: callers while a job
    runs share it (a stuck database costs one thread, not one per probe)."""

    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._running: Future | None = None

    def run(self, job) -> Future:
        """The running job's future, or a new one for `job` (with `job` fresh connections)."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._executor.submit(_with_fresh_connections, job)
            return self._running


def _with_fresh_connections(job):
    # This thread's connection between jobs, as Django treats a request's thread at its
    # start: CONN_MAX_AGE, a broken connection closed, CONN_HEALTH_CHECKS' check re-armed.
    close_old_connections()
    return job()


_replays = ProbeThread("healthz-replay")


def replay_in_background() -> None:
    _replays.run(replay_spool)


def _checks_job():
    return health_report(replay=replay_in_background)


FAIL = 503, {"status": "fail", "checks": {"database": {"status": "fail"}}}


class HealthMonitor:
    """The checks, re-run every LLM_HEALTHZ_INTERVAL_SECONDS on a thread of its own while
    probes come.

    `answer()` is called on the loop and never blocks: the latest result while it is
    recent, FAIL while a check has run longer than LLM_HEALTHZ_TIMEOUT_SECONDS, else a
    future of the next result. The thread starts at the first probe and stops after
    IDLE_AFTER seconds without one (the next probe starts it again, and waits for its
    first result).
    """

    IDLE_AFTER = 60.0

    def __init__(self, name: str, job):
        self._name = name
        self._job = job
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._latest: tuple[float, tuple[int, dict]] | None = None  # (finished at, result)
        self._running_since: float | None = None
        self._waiters: list[Future] = []
        self._last_probe = 0.0

    def answer(self) -> tuple[int, dict] | Future:
        interval = settings.LLM_HEALTHZ_INTERVAL_SECONDS
        timeout = settings.LLM_HEALTHZ_TIMEOUT_SECONDS
        now = time.monotonic()
        with self._lock:
            self._last_probe = now
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._running_since is not None and now - self._running_since > timeout:
                return FAIL
            if self._latest is not None and now - self._latest[0] <= interval + timeout:
                return self._latest[1]
            waiter = Future()
            self._waiters.append(waiter)
            self._wake.set()  # a check now, not at the end of the interval
            return waiter

    def stop(self) -> None:
        """Stop the thread (its database connections closed) and forget the results."""
        with self._lock:
            thread, self._stopping = self._thread, True
        self._wake.set()
        if thread is not None:
            thread.join(30)
        with self._lock:
            self._latest = None

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    idle = time.monotonic() - self._last_probe > self.IDLE_AFTER
                    if self._stopping or (idle and not self._waiters):
                        self._thread = None
                        return
                    self._running_since = time.monotonic()
                self._wake.clear()
                result = self._check()
                with self._lock:
                    self._running_since = None
                    self._latest = (time.monotonic(), result)
                    waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    if waiter.set_running_or_notify_cancel():  # not given up on
                        waiter.set_result(result)
                self._wake.wait(settings.LLM_HEALTHZ_INTERVAL_SECONDS)
        finally:
            connections.close_all()

    def _check(self) -> tuple[int, dict]:
        try:
            return _with_fresh_connections(self._job)
        except Exception:
            logger.exception("healthz: the checks failed")
            return FAIL


monitor = HealthMonitor("healthz", _checks_job)


async def report_off_the_loop(monitor: HealthMonitor = monitor) -> tuple[int, dict]:
    """(status, body) of a probe on an event loop: `monitor`'s latest result, or its next
    one waited for at most LLM_HEALTHZ_TIMEOUT_SECONDS (then FAIL). The served /healthz
    and the probe port (config/serving/probe.py) both answer with this."""
    answer = monitor.answer()
    if not isinstance(answer, Future):
        return answer
    timeout = settings.LLM_HEALTHZ_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.wrap_future(answer)
    except TimeoutError:
        logger.error("healthz: the checks did not answer within %g s", timeout)
        return FAIL


@never_cache
@require_safe
async def healthz(request):
    if isinstance(request, ASGIRequest):
        status, body = await report_off_the_loop()
    else:  # WSGI: the checks on the request's own thread, as a sync view
        status, body = await sync_to_async(health_report)()
    return JsonResponse(body, status=status)
