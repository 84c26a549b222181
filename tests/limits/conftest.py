"""Fixtures for the limits tests: an injectable clock, the fake provider, Redis, workers."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from llm_providers.limits import admission, backends, clock, policy
from llm_providers.models import TenantLLMLimits
from tests.factories import ProviderConfigFactory
from tests.support.processes import ROOT, free_port, wait_until
from tests.support.upstream import FakeUpstream

# A cent per token (the highest price a config may set, 10,000 USD per Mtok): the fake
# provider's connection-test answer (6 + 2 tokens) costs exactly $0.08.
DOLLAR_PER_TOKEN = {"pricing": {"input_per_mtok": "10000", "output_per_mtok": "10000"}}


class FakeClock:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_clock():
    """The admission clock at 17.25 s into a minute (a Tuesday, mid-month, UTC)."""
    fake = FakeClock(1_764_300_000 // 60 * 60 + 60 * 600 + 17.25)
    clock.set_clock(fake)
    yield fake
    clock.set_clock(None)


@pytest.fixture(autouse=True)
def _fresh_limits():
    from django.core.cache import cache

    cache.clear()  # breaker states and the list of tripped breakers
    policy.forget()
    backends.reset()
    yield
    leaked = dict(admission._local_inflight)
    admission._local_inflight.clear()
    assert not leaked, "a test left a call admitted but never settled"
    policy.forget()
    backends.reset()
    clock.set_clock(None)


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def priced_config(tenant, upstream):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        default_model="gemma-3-270m",
        base_url=upstream.base_url,
        api_key="",
        metadata=dict(DOLLAR_PER_TOKEN),
    )


def set_limits(tenant, **limits) -> TenantLLMLimits:
    row, _ = TenantLLMLimits.objects.update_or_create(tenant=tenant, defaults=limits)
    return row


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a random loopback port for the session (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            "redis-server is not installed: `apt-get install -y redis-server` "
            "(CI installs it in .ci/run)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=20, what="redis-server answering PING", process=process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_backend(redis_server, settings):
    import redis

    from llm_providers.limits.backends.redis import RedisBackend

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    settings.LLM_LIMITS_BACKEND = "redis"
    backends.reset()
    backends._backends["redis"] = RedisBackend(client=client)
    yield backends._backends["redis"]
    client.flushdb()


@pytest.fixture(params=["database", "redis"])
def backend_name(request, settings):
    """Run a test against each admission backend."""
    if request.param == "redis":
        request.getfixturevalue("redis_backend")
    else:
        settings.LLM_LIMITS_BACKEND = "database"
    return request.param


# --- Worker processes ------------------------------------------------------------------------


def test_database_url() -> str:
    """The URL of the database the test runs against (committed rows are visible to workers)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


test_database_url.__test__ = False


class Workers:
    """Worker processes (tests/support/limits_worker.py) started together, read to the end."""

    def __init__(self, tmp_path: Path, cache_url: str | None = None, **env):
        self.tmp_path = tmp_path
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": "test-only-secret-key-for-limits-workers",
            "FIELD_ENCRYPTION_KEY": os.environ["FIELD_ENCRYPTION_KEY"],
            "DATABASE_URL": test_database_url(),
            "CACHE_URL": cache_url or f"filecache://{tmp_path / 'cache'}",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "LLM_VALIDATE_ON_STARTUP": "false",
            "LLM_MAX_RETRIES": "0",
            "LLM_BASE_URL_ALLOWLIST": "127.0.0.0/8,::1/128",  # the fake provider is local
            "LLM_DEFAULT_PROVIDER": "",
            "LLM_LIMITS_RECONCILE_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        self.env.update({k: str(v) for k, v in env.items()})
        self.processes: list[subprocess.Popen] = []

    def start(self, job: dict, count: int = 1, **env) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.limits_worker"],
                cwd=ROOT,
                env={
                    **self.env,
                    "LIMITS_JOB": json.dumps(job),
                    **{k: str(v) for k, v in env.items()},
                },
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append(process)
        for process in started:
            line = process.stdout.readline().strip()
            if line != "ready":
                process.kill()
                pytest.fail(f"worker did not start: {line!r} {process.stderr.read()}")
        self.processes += started
        return started

    @staticmethod
    def go(processes) -> None:
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()

    @staticmethod
    def results(processes, timeout: float = 180) -> list[dict]:
        lines = []
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            assert process.returncode == 0, f"worker failed: {err}"
            lines += [json.loads(line) for line in out.splitlines() if line.strip()]
        crashed = [line["exception"] for line in lines if "exception" in line]
        assert not crashed, crashed[0]
        return lines

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path):
    made = []

    def make(**kwargs) -> Workers:
        w = Workers(tmp_path, **kwargs)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()
