"""The serving settings: the collector's first threshold (config/serving/gc.py), every
serving setting out of its range stops start-up naming it (config/serving/numbers.py), and
the web server's own (scripts/serve-web.sh): its access log."""

import gc
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.serving import gc as serving_gc
from tests.support.processes import (
    ROOT,
    WebServer,
    get_json,
    manage,
    process_env,
    subprocess_database,
)

PRINT_THRESHOLDS = """
import gc
before = gc.get_threshold()
import config.asgi  # noqa: F401  (the served application: tunes the collector)
print(before, gc.get_threshold())
"""


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_first_threshold_is_set_and_the_older_generations_keep_theirs(thresholds):
    gc.set_threshold(2000, 11, 12)

    serving_gc.tune(50_000)

    assert gc.get_threshold() == (50_000, 11, 12)


def test_zero_leaves_pythons_thresholds(thresholds):
    gc.set_threshold(2000, 11, 12)

    serving_gc.tune(0)

    assert gc.get_threshold() == (2000, 11, 12)


@pytest.mark.parametrize("bad", [-1, 1, 699, 2.5, True, "50000"])
def test_a_bad_threshold_is_an_error_naming_the_setting(thresholds, bad):
    before = gc.get_threshold()

    with pytest.raises(ImproperlyConfigured, match="SERVER_GC_THRESHOLD"):
        serving_gc.tune(bad)

    assert gc.get_threshold() == before


def import_the_served_application(tmp_path, **settings):
    """Import config.asgi in a fresh process with these settings (environment variables)."""
    env = process_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, **settings)
    return subprocess.run(
        [sys.executable, "-c", PRINT_THRESHOLDS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_served_application_applies_the_setting(tmp_path):
    done = import_the_served_application(tmp_path, SERVER_GC_THRESHOLD="12345")

    assert done.returncode == 0, done.stderr
    before, after = done.stdout.strip().split(") (")
    assert after.startswith("12345,"), done.stdout
    assert before.split(",")[1:] == after.rstrip(")").split(",")[1:], done.stdout


def test_a_bad_setting_stops_the_served_application(tmp_path):
    done = import_the_served_application(tmp_path, SERVER_GC_THRESHOLD="5")

    assert done.returncode != 0
    assert "SERVER_GC_THRESHOLD must be 0" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_THREADS", "0"),
        ("SERVER_MAX_BODY_BYTES", "0"),
        ("SERVER_BODY_TIMEOUT_SECONDS", "0"),
        ("SERVER_BODY_TIMEOUT_SECONDS", "-1"),
        ("SERVER_HEALTH_STALL_SECONDS", "0"),
        ("SERVER_HEALTH_PORT", "70000"),
    ],
)
def test_a_serving_setting_out_of_range_stops_the_served_application_naming_it(
    tmp_path, name, value
):
    done = import_the_served_application(tmp_path, **{name: value})

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert f"{name} must be" in done.stderr


def test_the_smallest_serving_settings_are_accepted(tmp_path):
    done = import_the_served_application(
        tmp_path, WEB_THREADS="1", SERVER_MAX_BODY_BYTES="1", SERVER_BODY_TIMEOUT_SECONDS="0.5"
    )

    assert done.returncode == 0, done.stderr


def test_task_threads_out_of_range_stops_the_worker_naming_it(settings):
    settings.TASK_THREADS = 0

    with pytest.raises(CommandError, match="TASK_THREADS must be an integer of at least 1"):
        call_command("db_worker")


# --- The web server's own settings (scripts/serve-web.sh) ---------------------------------


def check_web_settings(**settings) -> subprocess.CompletedProcess:
    """`scripts/serve-web.sh --check` with these settings (environment variables)."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "serve-web.sh"), "--check"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("value", ["maybe", "2", "off please"])
def test_a_bad_access_log_setting_stops_the_server_naming_it(value):
    done = check_web_settings(SERVER_ACCESS_LOG=value)

    assert done.returncode == 2
    assert f"SERVER_ACCESS_LOG must be true or false (got '{value}')" in done.stderr


@pytest.mark.parametrize("value", ["70000", "-1", "80a", "123456"])
def test_a_bad_probe_port_stops_the_server_naming_it(value):
    done = check_web_settings(SERVER_HEALTH_PORT=value)

    assert done.returncode == 2
    assert (
        f"SERVER_HEALTH_PORT must be 0 (no probe port) or a port from 1 to 65535 (got '{value}')"
        in done.stderr
    )


def test_the_probe_port_must_differ_from_the_served_port():
    done = check_web_settings(PORT="8000", SERVER_HEALTH_PORT="8000")

    assert done.returncode == 2
    assert "SERVER_HEALTH_PORT must differ from PORT" in done.stderr


@pytest.mark.parametrize("value", ["0", "8001", "65535"])
def test_a_probe_port_in_range_is_accepted(value):
    assert check_web_settings(SERVER_HEALTH_PORT=value).returncode == 0


@pytest.mark.parametrize("value", ["true", "FALSE", "1", "0", "on", "off"])
def test_the_access_log_setting_takes_the_usual_spellings(value):
    assert check_web_settings(SERVER_ACCESS_LOG=value).returncode == 0


def test_the_access_log_is_on_unless_turned_off(tmp_path):
    """One line per request by default; none with SERVER_ACCESS_LOG=false."""
    lines = {}
    with subprocess_database(tmp_path) as database_url:
        env = process_env(database_url, tmp_path)
        manage(env, "migrate", "--noinput", "-v", "0")
        for value in ("true", "false"):
            log = tmp_path / f"server-{value}.log"
            web = WebServer({**env, "SERVER_ACCESS_LOG": value}, log).start()
            try:
                get_json(f"{web.base_url}/healthz")
            finally:
                web.stop()
            lines[value] = [line for line in web.log().splitlines() if '"GET /healthz' in line]

    assert lines["true"] and all(" 200 " in line for line in lines["true"])
    assert lines["false"] == []
