"""The task worker (issue 9.6, 15.3): builds side by side, and a sick database survived.

Real `manage.py db_worker` processes (worker/: the library's worker in TASK_THREADS
threads, backing off on database errors) against their own database.
"""

import sqlite3

import pytest

from tests.support.processes import manage, subprocess_database, wait_until
from tests.support.slow_provider import SlowProvider
from tests.support.stack import Stack
from tests.support.upstream import MODEL

TERMINAL = {"succeeded", "failed", "cancelled"}
BUILDS = 8

ENQUEUE = (
    "from llm_providers.usage.tasks import roll_up_usage\nprint('TASK', roll_up_usage.enqueue().id)"
)
STATUS = (
    "from django_tasks_db.models import DBTaskResult\n"
    "print('STATUS', DBTaskResult.objects.get(id='{id}').status)"
)


@pytest.fixture
def provider():
    stand_in = SlowProvider(delay=1.0).start()  # every chat call takes 1 s
    yield stand_in
    stand_in.stop()


@pytest.fixture
def stack(tmp_path, provider):
    with subprocess_database(tmp_path) as database_url:
        deployment = Stack(tmp_path, database_url, provider)
        deployment.migrate()
        try:
            yield deployment
        finally:
            deployment.stop()


def test_eight_builds_started_together_run_side_by_side(stack, provider):
    stack.env["TASK_THREADS"] = str(BUILDS)
    key = stack.create_tenants("acme")["acme"]
    stack.start_server()
    configured = stack.post(
        "/api/llm/provider/configure",
        key,
        {
            "provider": "local",
            "base_url": provider.base_url,
            "default_model": MODEL,
            "api_key": "sk-test-parallel-0001",
        },
    )
    assert configured.status_code == 201, configured.text
    urls = []
    for index in range(BUILDS):
        started = stack.post(
            "/api/build/start", key, {"prompt": f"A shop number {index}", "max_iterations": 3}
        )
        assert started.status_code == 202, started.text
        urls.append(started.json()["status_url"])
    calls_before = provider.calls
    stack.start_worker()

    def all_finished():
        bodies = [stack.get(url, key).json() for url in urls]
        return bodies if all(body["status"] in TERMINAL for body in bodies) else None

    builds = wait_until(all_finished, timeout=90, what="the builds", process=stack.worker.process)

    assert [build["status"] for build in builds] == ["succeeded"] * BUILDS
    assert provider.calls - calls_before == BUILDS * 4  # blueprint, review, refine, review
    # One worker process ran them side by side: the provider saw at least half of them
    # calling at the same time (one at a time, it would never see more than one).
    assert provider.max_in_flight >= BUILDS // 2
    assert "Running 8 task threads" in stack.worker.log()


def task_status(stack, task_id: str) -> str:
    out = manage(stack.env, "shell", "-c", STATUS.format(id=task_id)).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("STATUS"))


def enqueue(stack) -> str:
    out = manage(stack.env, "shell", "-c", ENQUEUE).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("TASK"))


def hold_sqlite_write_lock(stack, worker):
    """Hold BEGIN IMMEDIATE (longer than the worker's 1 s busy timeout) until it notices."""
    path = stack.env["DATABASE_URL"].removeprefix("sqlite:///")
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # every other writer now waits, then fails
    try:
        wait_until(
            lambda: "database unavailable (OperationalError: database is locked)" in worker.log(),
            timeout=60,
            what="the worker meeting the lock",
            process=worker.process,
        )
        assert worker.process.poll() is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def cut_postgresql_connections(stack, worker):
    """Refuse the worker's new connections and terminate its open ones until it notices.

    Terminating alone is not enough: the worker checks its connection before each poll
    (CONN_HEALTH_CHECKS) and quietly opens a new one when the old one is gone, so only a
    termination that lands inside a query was ever seen (CI once waited 60 s for one).
    With the database's connection limit at 0 the new connection is refused too, and
    the worker meets the error for certain; the limit is lifted before the task is sent.
    """
    import psycopg
    from psycopg import sql

    url = stack.env["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:

        def limit(n: int) -> None:
            # The database's owner (the test's role, not a superuser) may set it; existing
            # sessions, this one included, stay connected.
            conn.execute(
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                    sql.Identifier(name), sql.Literal(n)
                )
            )

        def terminated():
            conn.execute(
                # Client sessions of our own role only: an autovacuum worker on this
                # database is a superuser's, and terminating it is refused (CI, once).
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' AND usename = current_user",
                (name,),
            )
            return "database unavailable" in worker.log()

        limit(0)
        try:
            wait_until(
                terminated,
                timeout=60,
                what="the worker losing its connection",
                process=worker.process,
                interval=0.5,
            )
        finally:
            limit(-1)


def test_the_worker_survives_a_sick_database_and_then_runs_a_task(stack):
    """SQLite: a write lock held longer than the busy timeout (it used to exit the worker
    with `database is locked`); PostgreSQL: its connections killed under it."""
    stack.env.update(SQLITE_BUSY_TIMEOUT="1", TASK_THREADS="2")
    worker = stack.start_worker()
    wait_until(lambda: "Starting worker" in worker.log(), timeout=30, what="the worker")

    if stack.env["DATABASE_URL"].startswith("sqlite"):
        hold_sqlite_write_lock(stack, worker)
    else:
        cut_postgresql_connections(stack, worker)
    assert worker.process.poll() is None

    task_id = enqueue(stack)
    wait_until(
        lambda: task_status(stack, task_id) == "SUCCESSFUL",
        timeout=60,
        what="the task after the database came back",
        process=worker.process,
    )
    assert worker.process.poll() is None
