"""django-tasks-db's Worker, made to survive database trouble and to run beside others.

django-tasks-db's `db_worker` runs one task at a time and has no concurrency option (only
`--max-tasks`, `--batch`, `--interval`): builds wait on providers nearly all the time, so
one process runs `threads` workers, each its own poll loop and database connection, each
claiming tasks the way the library does (row locks on PostgreSQL, an exclusive transaction
on SQLite), so they never take the same task.

The library's loop exits on any database error outside the claim itself (its
`BEGIN IMMEDIATE` on SQLite raises `database is locked` before its own retry can see it; a
lost PostgreSQL connection raises too), and a failed write of a task's result leaves the
task claimed for ever. Here a database error backs the loop off and it polls again, and
the result write is retried until the database takes it.
"""

import logging
import random
import threading
import time

from django.db import DatabaseError, close_old_connections, connections
from django_tasks_db.management.commands.db_worker import Worker

logger = logging.getLogger("worker")

# Back-off after a database error: doubles from FIRST to LAST (with jitter); reset once the
# loop has run cleanly for RESET_AFTER seconds.
BACKOFF_FIRST = 0.5
BACKOFF_LAST = 30.0
RESET_AFTER = 60.0
# A task's result write is retried for this long before the error is let through.
RESULT_WRITE_PATIENCE = 300.0


class ResilientWorker(Worker):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._wake = threading.Event()

    def stop(self) -> None:
        """Finish the current task, then leave the loop (no new task is claimed)."""
        self.running = False
        self._wake.set()

    def run(self) -> None:
        delay = BACKOFF_FIRST
        while self.running:
            began = time.monotonic()
            try:
                super().run()
                return
            except DatabaseError as exc:
                if time.monotonic() - began > RESET_AFTER:
                    delay = BACKOFF_FIRST
                pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)
                logger.warning(
                    "worker %s: database unavailable (%s: %s); polling again in %.1f s",
                    self.worker_id,
                    type(exc).__name__,
                    exc,
                    pause,
                )
                _drop_connection()
                self.startup_delay = False
                if self._wake.wait(pause):
                    return
                delay = min(delay * 2, BACKOFF_LAST)

    def run_task(self, db_task_result) -> None:
        for name in ("set_successful", "set_failed"):
            setattr(db_task_result, name, self._patiently(getattr(db_task_result, name)))
        super().run_task(db_task_result)

    def _patiently(self, write):
        def retried(*args, **kwargs):
            deadline = time.monotonic() + RESULT_WRITE_PATIENCE
            delay = BACKOFF_FIRST
            while True:
                try:
                    return write(*args, **kwargs)
                except DatabaseError as exc:
                    if time.monotonic() + delay > deadline:
                        raise
                    logger.warning(
                        "worker %s: could not record a task's result (%s); retrying in %.1f s",
                        self.worker_id,
                        type(exc).__name__,
                        delay,
                    )
                    _drop_connection()
                    time.sleep(delay)
                    delay = min(delay * 2, BACKOFF_LAST)

        return retried


def _drop_connection() -> None:
    """Start the next attempt on a fresh connection (a broken one is not reused)."""
    try:
        connections.close_all()
    except DatabaseError:
        pass
    close_old_connections()
