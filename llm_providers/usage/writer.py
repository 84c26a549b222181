"""One writer thread per process, committing the usage rows of concurrent calls together.

Every answered call owes one row. Written by each call's own thread, N concurrent calls
made N commits, and on SQLite N writers queued for its one write lock: at 1,024 open
requests the INSERTs were most of the CPU (py-spy) and the throughput ceiling
(bench/README.md, "Concurrency"). Here a call hands its row to this process's writer and
waits for it: the writer takes every row queued at that moment and commits them in one
transaction (one multi-row INSERT, writes.save_usage_rows_durably), then wakes their
callers with their ids. Nothing waits for a batch to fill: an idle writer commits a lone
row at once, and a busy one batches exactly the rows that arrived during its last commit.

The caller still returns only once its row is committed (or spooled), as before: a row
never sits in memory where a crash could lose it after the caller has answered.

Rows written inside a caller's transaction (the test suite's, or a caller's `atomic`)
do not come here: they must share that transaction (writes.save_usage_row_durably).
"""

import asyncio
import logging
import os
import queue
import threading
from concurrent.futures import Future, InvalidStateError

from django.db import connections, router

logger = logging.getLogger(__name__)

# Rows per commit at most (also bounded by the database's limit on statement parameters).
MAX_BATCH = 256
# An idle writer closes its database connection after this long without rows.
IDLE_CLOSE_SECONDS = 30.0
# How often an idle writer looks whether the process is exiting (its main thread ended).
EXIT_CHECK_SECONDS = 0.25

_STOP = object()


class UsageWriter:
    """A thread that commits queued usage rows in batches; started lazily, per process."""

    def __init__(self, max_batch: int = MAX_BATCH, idle_close: float = IDLE_CLOSE_SECONDS):
        self.max_batch = max_batch
        self.idle_close = idle_close
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.batches = 0  # commits made, for tests and the benchmark
        self.rows = 0

    def submit(self, row) -> Future:
        """Queue `row`; the future gives its id (None: spooled) or the write's exception."""
        future: Future = Future()
        self._ensure_running()
        self._queue.put((row, future))
        return future

    def asubmit(self, row) -> "asyncio.Future":
        """`submit` for a coroutine: an asyncio future of the running loop. The writer
        wakes each loop once per batch, not once per row (every wake-up is a write to the
        loop's self-pipe)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_running()
        self._queue.put((row, _LoopWaiter(loop, future)))
        return future

    def write(self, row) -> int | None:
        """Queue `row` and wait until it is committed (or spooled)."""
        return self.submit(row).result()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, close the connection, end the thread (tests, shutdown)."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            self._thread = None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)

    def _ensure_running(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._pid == pid:
            return
        with self._lock:
            if self._thread is not None and self._pid == pid:
                return
            if self._pid != pid:  # a forked child: the parent's thread and queue stayed there
                self._queue = queue.SimpleQueue()
            self._pid = pid
            # Not a daemon: at the process's exit (the interpreter's, or a server worker's
            # end, which joins non-daemon threads too) it writes what is queued first, then
            # ends once the main thread has (a daemon was killed with its rows, measured:
            # 7 rows of 43,000 calls lost at a server's stop).
            self._thread = threading.Thread(
                target=self._run, args=(self._queue,), name="usage-writer", daemon=False
            )
            self._thread.start()

    def _run(self, rows: queue.SimpleQueue) -> None:
        try:
            while (batch := self._next_batch(rows)) is not None:
                stop = any(item is _STOP for item in batch)
                self._commit([item for item in batch if item is not _STOP])
                if stop:
                    self._drain(rows)
                    return
        finally:
            self._close_connection()

    def _next_batch(self, rows: queue.SimpleQueue) -> list | None:
        """The rows queued now (waiting for the first); None once the process is exiting
        with nothing queued. An idle connection is closed after `idle_close` seconds."""
        idle = 0.0
        while True:
            try:
                first = rows.get(timeout=EXIT_CHECK_SECONDS)
                break
            except queue.Empty:
                if not threading.main_thread().is_alive():
                    return None
                idle += EXIT_CHECK_SECONDS
                if idle >= self.idle_close:
                    self._close_connection()
                    idle = 0.0
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                batch.append(rows.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self, rows: queue.SimpleQueue) -> None:
        """Rows queued behind a stop are still written."""
        while True:
            try:
                item = rows.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._commit([item])

    def _commit(self, batch: list) -> None:
        if not batch:
            return
        from .writes import save_usage_rows_durably

        try:
            ids = save_usage_rows_durably([row for row, _ in batch])
        except BaseException as exc:  # each caller gets the write's own error
            logger.exception("usage writer: a batch of %d row(s) failed", len(batch))
            _resolve([(waiter, None, exc) for _, waiter in batch])
            return
        self.batches += 1
        self.rows += len(batch)
        _resolve([(waiter, pk, None) for (_, waiter), pk in zip(batch, ids, strict=True)])

    @staticmethod
    def _close_connection() -> None:
        from ..models import UsageLog

        try:
            connections[router.db_for_write(UsageLog)].close()
        except Exception:  # closing a broken connection must not end the writer
            logger.warning("usage writer: could not close its connection", exc_info=True)


class _LoopWaiter:
    """An asyncio future and its loop: resolved from the writer thread in one callback."""

    __slots__ = ("future", "loop")

    def __init__(self, loop, future):
        self.loop = loop
        self.future = future


def _resolve(outcomes: list) -> None:
    """Give each waiter its id (or the error); asyncio ones in one callback per loop."""
    by_loop: dict = {}
    for waiter, pk, exc in outcomes:
        if isinstance(waiter, _LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, pk, exc))
        else:
            _settle(waiter, pk, exc)
    for loop, pending in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, pending)
        except RuntimeError:  # that loop is closed: nobody is left waiting there
            pass


def _settle_all(pending: list) -> None:
    for future, pk, exc in pending:
        _settle(future, pk, exc)


def _settle(future, result, exception) -> None:
    """Resolve a caller's future; one its caller cancelled is left so (its row is written
    all the same: a row is never dropped because nobody waits for it any more)."""
    if future.done():
        return
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:  # a concurrent future cancelled meanwhile
        pass


writer = UsageWriter()
