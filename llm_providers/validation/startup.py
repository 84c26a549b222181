"""Start-up validation in serving processes only (SPEC §8).

`AppConfig.ready()` calls `maybe_start_validation()`, which decides from the command line
and environment whether this process serves requests (gunicorn, runserver's serving
child) and, if so, starts the validation in a daemon thread that first waits for the app
registry and the database. Management commands (migrate, test, shell, ...) never start it,
and nothing here can block or crash start-up.
"""

import logging
import os
import sys
import threading
import time
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

LOCK_KEY = "llm_providers:validation:startup-lock"
# Several processes sharing a cache (Redis) validate once per this many seconds.
LOCK_SECONDS = 60
APPS_READY_TIMEOUT = 30.0
DATABASE_WAIT_SECONDS = 30.0


class OncePerProcess:
    """Remembers the process (pid) that started the validation: a forked child starts its
    own, a second call in the same process does not."""

    def __init__(self):
        self._pid = None
        self._lock = threading.Lock()

    def claim(self) -> bool:
        with self._lock:
            if self._pid == os.getpid():
                return False
            self._pid = os.getpid()
            return True


STARTED = OncePerProcess()


def is_serving_process(argv=None, environ=None) -> bool:
    """True for a granian or gunicorn worker/master or runserver's serving process."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    program = Path(argv[0]).as_posix() if argv else ""
    # The gunicorn arbiter sets SERVER_SOFTWARE before it loads the app; requiring the
    # program name too keeps a command started from inside a worker from matching.
    if environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/") and "gunicorn" in program:
        return True
    # granian (scripts/run.sh) forks its workers from the `granian` program itself.
    if Path(program).name == "granian":
        return True
    command = argv[1] if len(argv) > 1 else ""
    if command == "runserver":
        # With the autoreloader, only the child (RUN_MAIN=true) serves; the parent watches.
        return environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


def should_validate_on_startup(argv=None, environ=None) -> bool:
    if not settings.LLM_VALIDATE_ON_STARTUP:
        return False
    if (settings.LLM_VALIDATION_MODE or "").strip().lower() == "off":
        return False
    return is_serving_process(argv, environ)


def maybe_start_validation(argv=None, environ=None) -> threading.Thread | None:
    """Start the background validation once per process when this process serves."""
    try:
        if not should_validate_on_startup(argv, environ):
            return None
        if not STARTED.claim():
            return None
        thread = threading.Thread(
            target=run_startup_validation, name="llm-startup-validation", daemon=True
        )
        thread.start()
        return thread
    except Exception:
        logger.exception("could not start the LLM provider validation")
        return None


def _wait_for_apps(timeout=APPS_READY_TIMEOUT) -> bool:
    # ready() runs before the registry is complete; poll briefly rather than hook a
    # signal that not every server sends.
    deadline = time.monotonic() + timeout
    while not apps.ready:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_database(timeout=DATABASE_WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            connections["default"].ensure_connection()
            return True
        except DatabaseError:
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def claim_run() -> bool:
    """Whether this process runs the validation now: at most one process per LOCK_SECONDS
    among those sharing the cache (each validates for itself without a shared cache)."""
    from django.core.cache import cache

    try:
        return cache.add(LOCK_KEY, os.getpid(), timeout=LOCK_SECONDS)
    except Exception:
        return True  # no shared cache: each process validates for itself


def run_startup_validation() -> None:
    """Body of the background thread; logs instead of raising."""
    try:
        if not _wait_for_apps():
            logger.warning("LLM provider validation skipped: the app registry never became ready")
            return
        if not wait_for_database():
            logger.warning("LLM provider validation skipped: the database is not reachable")
            return
        if not claim_run():
            logger.info("LLM provider validation skipped: another process ran it just now")
            return
        from . import run_llm_startup_validation

        run_llm_startup_validation()
    except DatabaseError as exc:
        # Typically tables not migrated yet; the server keeps serving.
        logger.warning("LLM provider validation skipped: database error (%s)", type(exc).__name__)
    except Exception:
        logger.exception("LLM provider validation failed")
    finally:
        connections.close_all()
