"""Real Switchyard processes for tests: manage.py commands, the web server and db_worker.

The processes run the production settings (config.settings) with an environment built
here, against a database of their own: a SQLite file in the test's tmp directory, or, when
the suite itself runs on PostgreSQL (DATABASE_URL=postgres://..., as in CI's second run), a
fresh database on that same server, dropped afterwards. Nothing sleeps for a fixed time:
every wait polls with a deadline and fails early when the process it waits for has died.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet

from .pg import drop_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A loopback base URL nobody listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}/v1"


def wait_until(check, *, timeout: float, what: str, process=None, interval: float = 0.1):
    """Poll `check()` until it returns something truthy (returned), or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not done within {timeout} s")
        time.sleep(interval)


# --- A database for the processes --------------------------------------------------------


def _suite_database_url() -> str:
    return os.environ.get("DATABASE_URL", "")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "pgsql://"))


@contextmanager
def subprocess_database(tmp_path: Path):
    """The DATABASE_URL for processes started by one test (see the module docstring)."""
    suite_url = _suite_database_url()
    if not _is_postgres(suite_url):
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg

    admin_url = suite_url.replace("pgsql://", "postgres://", 1)
    name = f"switchyard_proc_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            drop_database(conn, name)


def process_env(database_url: str, tmp_path: Path, **overrides) -> dict:
    """Environment of a Switchyard process: production settings, throwaway secrets.

    Everything that matters is set explicitly, so a developer's `.env` (read by the
    settings for unset variables only) cannot change what the test sees. The cache is the
    test's own: a shared file cache would carry rate limits and the start-up validation
    lock over from other servers.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "test-only-secret-key-for-subprocess-tests",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "CACHE_URL": f"filecache://{tmp_path / 'cache'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "LLM_VALIDATE_ON_STARTUP": "false",
        "LLM_VALIDATION_MODE": "models",
        "LLM_MAX_RETRIES": "0",
        "LLM_DEFAULT_PROVIDER": "",
        "LLM_DEFAULT_MODEL": "",
        "LLM_DEFAULT_BASE_URL": "",
        "LLM_BASE_URL_ALLOWLIST": "127.0.0.0/8,::1/128",  # the fake providers are local
        "LOG_LEVEL": "INFO",
        # The processes' shared metric files: the test's own (serve-web.sh creates it).
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def manage(env: dict, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS`; a non-zero exit fails the test with the command's output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {args[0]}: {result.stdout}{result.stderr}"
    return result


# --- Long-running processes ---------------------------------------------------------------


class _Process:
    """A process writing its output to a log file, stopped like an operator would."""

    def __init__(self, argv: list[str], env: dict, log_path: Path):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class WebServer(_Process):
    """scripts/serve-web.sh (granian serving config.asgi, as `make run` does) on a free port
    of 127.0.0.1, with one worker process unless the environment says otherwise."""

    def __init__(self, env: dict, log_path: Path, port: int | None = None):
        self.port = port or free_port()
        env = {
            "WEB_CONCURRENCY": "1",
            "SHUTDOWN_GRACE_SECONDS": "10",
            **env,
            "BIND_ADDRESS": "127.0.0.1",
            "PORT": str(self.port),
            "VENV": str(BIN.parent),
        }
        super().__init__(["bash", str(ROOT / "scripts" / "serve-web.sh")], env, log_path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30):
        super().start()
        wait_until(
            lambda: get_json(f"{self.base_url}/healthz") is not None,
            timeout=timeout,
            what="the web server answering /healthz",
            process=self.process,
        )
        return self


class DbWorker(_Process):
    """`manage.py db_worker`, polling the queue continuously like the one `make run` starts."""

    def __init__(self, env: dict, log_path: Path):
        super().__init__(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.1",
            ],
            env,
            log_path,
        )


def get_json(url: str, timeout: float = 2) -> dict | None:
    """The JSON body of GET `url` (also for 4xx/5xx), or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)
    except OSError:
        return None


def wait_for_validation(base_url: str, process, timeout: float = 60) -> dict:
    """Poll /healthz until the start-up validation has reported; its body."""

    def reported():
        body = get_json(f"{base_url}/healthz")
        if body and body.get("checks", {}).get("validation", {}).get("status") != "not_run":
            return body
        return None

    return wait_until(
        reported, timeout=timeout, what="start-up validation in /healthz", process=process
    )
