"""scripts/run.sh: the web server (granian) and the task worker side by side, stopped
together, each restarted when it dies on its own.

These start the real processes from .venv (which `make test` has just built) on a free
port of 127.0.0.1, against a throwaway SQLite database.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60  # seconds for start-up or shutdown; generous for a shared, busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> dict[int, str]:
    """The served processes run.sh started (not its `sleep` between polls), by pid."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    rows = (line.strip().split(None, 1) for line in out.stdout.splitlines() if line.strip())
    return {int(p): args for p, args in rows if "granian" in args or "db_worker" in args}


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def wait_for(condition, what: str):
    wait_until(condition, timeout=DEADLINE, what=what)


def default_sigint():
    """In the child before exec: a terminal's shell starts `make run` with SIGINT at its
    default. A suite started from a script that ignores SIGINT (a background job) would
    otherwise hand that down, and a shell cannot trap a signal ignored at its start."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignored_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Server:
    """scripts/run.sh in its own session, as a terminal would run `make run`."""

    def __init__(self, env, preexec_fn=default_sigint):
        self.lines: list[str] = []
        self.seen: dict[int, str] = {}  # every child observed, so teardown can kill it
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def children(self) -> dict[int, str]:
        found = children_of(self.proc.pid)
        self.seen.update(found)
        return found

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self):
        """Leave nothing running, whatever the test did (children first: once run.sh is
        gone they are no longer its children)."""
        self.children()
        for pid in self.seen:
            # Its whole process group (run.sh's `set -m`): granian's worker processes
            # would outlive their killed parent.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            # Not in a group of its own: killed by itself (it may end meanwhile).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)


def base_env(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", home),
        # The test settings: throwaway secrets, static files served without collectstatic.
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "ALLOWED_HOSTS": "127.0.0.1",
    }


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """One migrated SQLite database for the module: the tests only read it."""
    path = tmp_path_factory.mktemp("run") / "run.sqlite3"
    env = {**base_env(str(path.parent)), "DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=DEADLINE,
    )
    return env["DATABASE_URL"]


@pytest.fixture
def run_env(tmp_path, database_url):
    if not (ROOT / ".venv" / "bin" / "granian").exists():
        pytest.fail("scripts/run.sh needs .venv: run the suite with `make test`")
    return {
        **base_env(str(tmp_path)),
        "DATABASE_URL": database_url,
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "TASK_WORKERS": "1",
        "TASK_THREADS": "2",
        "SHUTDOWN_GRACE_SECONDS": "5",
    }


@pytest.fixture
def server(run_env):
    server = Server(run_env)
    yield server
    server.stop()


def get(port: str, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status


def test_serves_the_admin_and_runs_the_worker_until_ctrl_c_stops_both(server, run_env):
    wait_for(lambda: "Switchyard is running" in server.output(), "the web server to listen")
    wait_for(lambda: "Starting worker" in server.output(), "the db_worker to start")
    children = server.children()
    assert sorted("db_worker" in args for args in children.values()) == [False, True]
    assert get(run_env["PORT"], "/admin/login/") == 200

    # Ctrl-C in a terminal signals the foreground process group: run.sh's.
    os.killpg(server.proc.pid, signal.SIGINT)

    assert server.proc.wait(timeout=DEADLINE) == 0
    assert not [pid for pid in children if running(pid)]
    with pytest.raises(OSError):
        get(run_env["PORT"], "/admin/login/")


def pid_of(server, word: str) -> int:
    return next(pid for pid, args in server.children().items() if word in args)


def test_restarts_the_web_server_when_it_dies_and_keeps_the_worker(server, run_env):
    wait_for(lambda: "Starting worker" in server.output(), "the db_worker to start")
    wait_for(lambda: "Switchyard is running" in server.output(), "the web server to listen")
    web, worker = pid_of(server, "granian"), pid_of(server, "db_worker")
    wait_for(lambda: children_of(web), "granian's worker processes")
    web_workers = list(children_of(web))

    os.kill(web, signal.SIGKILL)

    wait_for(lambda: "restarted the web server" in server.output(), "the web server's restart")
    wait_for(lambda: _answers(run_env["PORT"]), "the restarted web server to answer")
    # The killed server's worker processes did not stay behind, serving beside the new one.
    wait_for(lambda: not any(running(p) for p in web_workers), "the old workers to be gone")
    assert pid_of(server, "granian") != web
    assert running(worker), "the worker must keep running while the web server restarts"
    assert server.proc.poll() is None
    assert "the web server exited unexpectedly" in server.output()


def test_restarts_a_dead_worker_and_the_web_server_stays_up(server, run_env):
    wait_for(lambda: "Starting worker" in server.output(), "the db_worker to start")
    wait_for(lambda: "Switchyard is running" in server.output(), "the web server to listen")
    web, worker = pid_of(server, "granian"), pid_of(server, "db_worker")

    os.kill(worker, signal.SIGKILL)

    wait_for(lambda: "restarted task worker 1" in server.output(), "the worker's restart")
    wait_for(
        lambda: any(pid != worker for pid, a in server.children().items() if "db_worker" in a),
        "a new db_worker process",
    )
    assert running(web)
    assert get(run_env["PORT"], "/healthz") == 200
    assert server.proc.poll() is None


def _answers(port: str) -> bool:
    try:
        return get(port, "/healthz") == 200
    except OSError:
        return False


def test_warns_when_sigint_is_ignored_and_still_stops_on_sigterm(run_env):
    server = Server(run_env, preexec_fn=ignored_sigint)
    try:
        wait_for(lambda: "Switchyard is running" in server.output(), "the web server to listen")
        assert "SIGINT is ignored" in server.output()
        children = server.children()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=DEADLINE) == 0
        assert not [pid for pid in children if running(pid)]
    finally:
        server.stop()


def test_does_not_warn_about_sigint_when_a_terminal_would_deliver_it(server):
    wait_for(lambda: "Switchyard is running" in server.output(), "the web server to listen")
    assert "SIGINT is ignored" not in server.output()


def test_refuses_a_busy_port_with_a_hint(run_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(run_env["PORT"])))
        busy.listen()
        result = subprocess.run(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )

    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "PORT=8001 make run" in result.stderr
