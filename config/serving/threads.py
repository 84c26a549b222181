"""A bounded, reused set of threads for the sync views under ASGI.

Django's ASGI handler gives every request its own thread-sensitive context, so each request
that runs sync code (every view today, the middleware, `response.close()`) gets a brand-new
thread, and with it a brand-new database connection: unbounded threads under load, and
`CONN_MAX_AGE` worth nothing (a SQLite connection with its PRAGMAs, or a PostgreSQL
handshake, on every request). `ASGI_THREADS` does not help: it sizes only the loop's default
executor, which Django uses for `thread_sensitive=False` work.

Here each HTTP request leases one of `WEB_THREADS` long-lived threads, at its first
thread-sensitive call, and keeps it until the request ends (every sync call of one request
must run on one thread: its database connection and transaction live there). A request that
never runs sync code (an async view) never takes a thread, so async views keep being served
while every thread is busy. When all are busy, further sync requests wait their turn on the
event loop, costing a socket and a few kilobytes, not a thread.
"""

import itertools
import queue
import threading
from collections import deque
from concurrent.futures import Executor, Future

from asgiref.sync import ThreadSensitiveContext
from django.db import close_old_connections, reset_queries

from llm_providers.engine.aio import reset_pool_mark, serve_on_pool

# Set in the scope of requests whose sync calls take a thread per call (read by
# config/serving/handler.py, which then leaves the connections' upkeep to the pool).
THREAD_PER_CALL = "switchyard.thread_per_call"


class _Worker:
    """One long-lived thread running the calls it is handed, one at a time."""

    def __init__(self, name: str):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.calls.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the awaiting coroutine, as executors do
                future.set_exception(exc)
            else:
                future.set_result(result)


class StickyThreadPool:
    """`size` threads, each leased to one request at a time (FIFO when all are busy)."""

    def __init__(self, size: int, name: str = "sync-view"):
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._started = 0
        self._counter = itertools.count(1)
        self._waiting: deque[_Lease] = deque()

    def lease(self) -> "_Lease":
        return _Lease(self)

    @property
    def busy(self) -> int:
        with self._lock:
            return self._started - len(self._idle)

    def _acquire(self, lease: "_Lease") -> _Worker | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._started < self.size:
                self._started += 1
                return _Worker(f"{self._name}-{next(self._counter)}")
            self._waiting.append(lease)
            return None

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            while self._waiting:
                lease = self._waiting.popleft()
                if not lease.released:
                    break
            else:
                self._idle.append(worker)
                return
        lease._assign(worker)

    def _forget(self, lease: "_Lease") -> None:
        with self._lock:
            try:
                self._waiting.remove(lease)
            except ValueError:
                pass


class _Lease(Executor):
    """The executor one request's thread-sensitive calls go to: one pooled thread."""

    def __init__(self, pool: StickyThreadPool):
        self._pool = pool
        self._worker: _Worker | None = None
        self._pending: list = []
        self._asked = False
        self.released = False
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        item = (future, fn, args, kwargs)
        with self._lock:
            if self.released:
                raise RuntimeError("this request's thread lease has ended")
            worker = self._worker
            if worker is None:
                self._pending.append(item)
                ask = not self._asked
                self._asked = True
        if worker is not None:
            worker.calls.put(item)
            return future
        if ask:
            worker = self._pool._acquire(self)
            if worker is not None:
                self._assign(worker)
        return future

    def _assign(self, worker: _Worker) -> None:
        with self._lock:
            self._worker = worker
            pending, self._pending = self._pending, []
        for item in pending:
            worker.calls.put(item)

    def release(self) -> None:
        """End of the request: its thread goes to the next waiting request."""
        with self._lock:
            self.released = True
            worker, self._worker = self._worker, None
            pending, self._pending = self._pending, []
        for future, *_ in pending:
            future.cancel()
        if worker is not None:
            self._pool._release(worker)
        else:
            self._pool._forget(self)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


def _with_fresh_connections(fn, args, kwargs):
    """Django's request boundary, for one call: what request_started's receivers do for a
    request's thread (CONN_MAX_AGE, a connection left broken or in a transaction, the
    health check of CONN_HEALTH_CHECKS, DEBUG's query log), done on the call's thread."""
    reset_queries()
    close_old_connections()
    return fn(*args, **kwargs)


class _PerCall(Executor):
    """A thread per call, back to the pool when the call ends (async-view paths).

    A request to an async view still makes a few sync calls (its admission, its usage
    INSERT), each an independent autocommit statement. A sticky lease would keep a thread
    from the first of them to the end of the request, so /v1 would again hold WEB_THREADS
    calls at once, the rest waiting: measured, 56 req/s at 256 open requests. Here each
    call takes any idle pooled thread (with its kept database connection) for its own
    length only, and that thread's connections are looked after first, as Django does at
    a request's start: the handler (config/serving/handler.py) skips those receivers for
    these requests, which on a random pooled thread looked after the wrong connections.
    """

    def __init__(self, pool: StickyThreadPool):
        self._pool = pool

    def submit(self, fn, /, *args, **kwargs) -> Future:
        lease = self._pool.lease()
        future = lease.submit(_with_fresh_connections, fn, args, kwargs)
        future.add_done_callback(lambda _: lease.release())
        return future


# Paths served by async views: their sync calls take a thread per call, not per request.
ASYNC_VIEW_PREFIXES = ("/v1/",)
# /healthz is async too, its checks on a thread of its own (llm_providers/health.py): it
# must never wait for one of these threads, which the /v1 usage INSERTs keep busy.
ASYNC_VIEW_PATHS = ("/healthz",)


class SyncViewThreads:
    """ASGI wrapper: every HTTP request's thread-sensitive calls share one pooled thread
    (a thread per call on ASYNC_VIEW_PREFIXES)."""

    def __init__(self, app, size: int):
        self.app = app
        self.pool = StickyThreadPool(size)
        self.per_call = _PerCall(self.pool)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # No sync code of this request can run inside a caller's transaction: the async
        # engine may hand its usage row to the writer thread from the loop (engine/aio.py).
        marked = serve_on_pool()
        try:
            path = scope.get("path", "")
            if path.startswith(ASYNC_VIEW_PREFIXES) or path in ASYNC_VIEW_PATHS:
                scope = {**scope, THREAD_PER_CALL: True}
                async with ThreadSensitiveContext(executor=self.per_call):
                    return await self.app(scope, receive, send)
            lease = self.pool.lease()
            try:
                async with ThreadSensitiveContext(executor=lease):
                    await self.app(scope, receive, send)
            finally:
                lease.release()
        finally:
            reset_pool_mark(marked)
