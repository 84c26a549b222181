"""The served application raises the collector's first threshold (config/serving/gc.py)."""

import gc
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

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


def import_the_served_application(tmp_path, threshold: str):
    """Import config.asgi in a fresh process with SERVER_GC_THRESHOLD=`threshold`."""
    env = process_env(
        f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, SERVER_GC_THRESHOLD=threshold
    )
    return subprocess.run(
        [sys.executable, "-c", PRINT_THRESHOLDS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_served_application_applies_the_setting(tmp_path):
    done = import_the_served_application(tmp_path, "12345")

    assert done.returncode == 0, done.stderr
    before, after = done.stdout.strip().split(") (")
    assert after.startswith("12345,"), done.stdout
    assert before.split(",")[1:] == after.rstrip(")").split(",")[1:], done.stdout


def test_a_bad_setting_stops_the_served_application(tmp_path):
    done = import_the_served_application(tmp_path, "5")

    assert done.returncode != 0
    assert "SERVER_GC_THRESHOLD must be 0" in done.stderr
