"""The default cache belongs to the deployment's database (config/settings.py): two
deployments run from one checkout never share throttles or validation state.

It used to be the checkout's var/cache for every deployment: one instance then skipped
its own start-up validation ("another process ran it just now") and /healthz reported the
other's counts.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import process_env

ROOT = Path(__file__).resolve().parents[1]


def default_cache(tmp_path, database_url: str) -> dict:
    env = process_env(database_url, tmp_path)
    del env["CACHE_URL"]  # the default, as a deployment without CACHE_URL has it
    result = subprocess.run(
        [sys.executable, "-c", "import json, config.settings as s; print(json.dumps(s.CACHES))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["default"]


def test_two_sqlite_deployments_from_one_checkout_get_two_cache_directories(tmp_path):
    first = default_cache(tmp_path, f"sqlite:///{tmp_path / 'a' / 'db.sqlite3'}")
    second = default_cache(tmp_path, f"sqlite:///{tmp_path / 'b' / 'db.sqlite3'}")

    assert (
        first["BACKEND"]
        == second["BACKEND"]
        == ("django.core.cache.backends.filebased.FileBasedCache")
    )
    assert first["LOCATION"] != second["LOCATION"]
    for cache in (first, second):
        assert Path(cache["LOCATION"]).parent == ROOT / "var" / "cache"


def test_every_process_of_one_deployment_shares_its_cache(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    # The same file however it is spelled, from any working directory.
    same = f"sqlite:///{tmp_path / 'x' / '..' / 'db.sqlite3'}"

    assert default_cache(tmp_path, url) == default_cache(tmp_path, same)


def test_postgresql_deployments_are_told_apart_by_server_and_database(tmp_path):
    one = default_cache(tmp_path, "postgres://u:p@127.0.0.1:5432/one")
    one_other_password = default_cache(tmp_path, "postgres://u:other@127.0.0.1:5432/one")
    two = default_cache(tmp_path, "postgres://u:p@127.0.0.1:5432/two")
    elsewhere = default_cache(tmp_path, "postgres://u:p@10.0.0.5:5432/one")

    assert one == one_other_password  # credentials are not part of the identity
    assert len({one["LOCATION"], two["LOCATION"], elsewhere["LOCATION"]}) == 3
    assert "p@" not in one["LOCATION"] and "one" not in Path(one["LOCATION"]).name
