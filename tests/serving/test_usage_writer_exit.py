"""A process that exits with usage rows still queued for its writer thread writes them first.

The writer (llm_providers/usage/writer.py) is not a daemon thread: at an interpreter's exit,
and at a server worker's (a multiprocessing child, as granian's workers are), the queued
rows are committed before the process ends. As a daemon it was killed with them: rows of
answered calls were missing after a server's stop (bench/README.md).
"""

import subprocess
import sys

from tests.support.processes import ROOT, manage, process_env, subprocess_database

SCRIPT = """
import multiprocessing
import django

django.setup()
from django.db import connections
from llm_providers.models import UsageLog
from llm_providers.usage.writer import writer
from tenants.models import Tenant


def queue_rows(n, first):
    for i in range(first, first + n):
        row = UsageLog(tenant_id="tenant_exit", provider="local", endpoint="chat",
                       success=True, latency_ms=1, tokens_used=i)
        writer.submit(row)  # queued, not waited for: the process ends right after


Tenant.objects.create(id="tenant_exit", name="Exit")
connections.close_all()  # the child must not share this connection
child = multiprocessing.get_context("fork").Process(target=queue_rows, args=(200, 0))
child.start()
child.join(60)
assert child.exitcode == 0, child.exitcode
queue_rows(100, 200)
"""

COUNT = """
import django

django.setup()
from llm_providers.models import UsageLog

rows = UsageLog.objects.filter(tenant_id="tenant_exit")
print(sorted(rows.values_list("tokens_used", flat=True)) == list(range(300)))
"""


def run(env, script):
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rows_queued_when_a_process_or_a_worker_process_exits_are_written(tmp_path):
    with subprocess_database(tmp_path) as database_url:
        env = process_env(database_url, tmp_path)
        manage(env, "migrate", "--noinput")

        exited = run(env, SCRIPT)
        assert exited.returncode == 0, exited.stderr

        counted = run(env, COUNT)
        assert counted.stdout.strip() == "True", counted.stdout + counted.stderr
