"""Running the django-tasks-db worker inside the test process."""

import signal
from io import StringIO

from django.core.management import call_command

WORKER_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)


def run_worker_until_idle(worker_id: str = "test-worker") -> str:
    """Run `manage.py db_worker --batch` until the queue is empty; return its output.

    One thread, the caller's: the test's own database connection (and its transaction)
    is the one the tasks see.
    """
    out = StringIO()
    call_command(
        "db_worker",
        "--batch",
        "--no-reload",
        "--no-startup-delay",
        "--interval",
        "0",
        "--worker-id",
        worker_id,
        "--threads",
        "1",
        stdout=out,
        stderr=out,
    )
    return out.getvalue()
