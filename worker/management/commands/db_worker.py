"""`manage.py db_worker`: django-tasks-db's command, plus `--threads` and database resilience.

This app comes before django_tasks_db in INSTALLED_APPS, so this command replaces the
library's one under the same name (its options are all kept); see worker/runner.py.
"""

import logging
import signal
import sys
import threading

from django.conf import settings
from django.core.management.base import CommandError
from django_tasks_db.management.commands.db_worker import Command as LibraryCommand

from llm_providers.checks import number_problem
from worker.runner import ResilientWorker

logger = logging.getLogger("django_tasks_db")


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


class Command(LibraryCommand):
    help = "Run the database task worker (several tasks at once with --threads)"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=None,
            help="Tasks run at once, each in its own thread (default: TASK_THREADS setting)",
        )

    def handle(self, *, threads=None, **options):
        threads = threads or settings.TASK_THREADS
        if number_problem(threads, 1, True, False, True):  # the rule of every number setting
            raise CommandError(f"TASK_THREADS must be an integer of at least 1 (got {threads!r}).")
        threads = int(threads)  # the rule takes 2.0 for an integer
        if options["reload"] and not options["batch"]:
            # The library's reloader path: one worker, as before.
            threads = 1
        self.configure_logging(options["verbosity"])
        base_id = options["worker_id"]
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")

        def make(index: int) -> ResilientWorker:
            worker_id = base_id if threads == 1 else f"{base_id[:60]}-{index}"
            return ResilientWorker(
                queue_names=queue_names,
                interval=options["interval"],
                batch=options["batch"],
                backend_name=options["backend_name"],
                startup_delay=options["startup_delay"],
                max_tasks=options["max_tasks"],
                worker_id=worker_id,
                excluded_queue_names=excluded,
            )

        if options["reload"] and not options["batch"]:
            return super().handle(**options)
        if threads == 1:
            worker = make(0)
            worker.configure_signals()
            worker.run()
            return
        self._run_threads([make(index) for index in range(threads)])

    def _run_threads(self, workers: list[ResilientWorker]) -> None:
        signals_seen = 0

        def shutdown(signum, frame):
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen > 1:
                logger.warning(
                    "Received %s - abandoning the running tasks.", signal.strsignal(signum)
                )
                sys.stdout.flush()
                sys.stderr.flush()
                import os

                os._exit(1)
            logger.warning(
                "Received %s - finishing the running tasks (press Ctrl+C again to abandon them)",
                signal.strsignal(signum),
            )
            for worker in workers:
                worker.stop()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(signum, shutdown)
        logger.info("Running %d task threads", len(workers))
        threads = [
            threading.Thread(target=worker.run, name=f"task-{index}", daemon=True)
            for index, worker in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # wakes for signals
