"""The serving settings: the collector's first threshold (config/serving/gc.py), and every
serving setting out of its range stops start-up naming it (config/serving/numbers.py)."""

import gc
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.serving import gc as serving_gc
from tests.support.processes import ROOT, process_env

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
