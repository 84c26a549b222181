"""LLM_BASE_URL_ALLOWLIST: empty by default, checked at start-up (issue 15.19, 13)."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from llm_providers.checks import check_base_url_allowlist
from tests.support.processes import process_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_host_name_in_the_allowlist_is_a_system_check_error(settings):
    settings.LLM_BASE_URL_ALLOWLIST = ["127.0.0.1", "localhost", "10.0.0.0/8", ""]

    errors = check_base_url_allowlist()

    assert [e.id for e in errors] == ["llm_providers.E001"]
    assert "LLM_BASE_URL_ALLOWLIST" in errors[0].msg and "'localhost'" in errors[0].msg


def test_the_check_is_registered_and_a_valid_allowlist_passes(settings):
    settings.LLM_BASE_URL_ALLOWLIST = ["127.0.0.0/8", "::1/128", "192.168.1.7"]

    assert check_base_url_allowlist() == []
    assert check_base_url_allowlist in checks.registry.registry.get_checks()


@pytest.mark.parametrize("value", ["127.0.0.1,localhost", "example.com"])
def test_manage_check_refuses_a_host_name_in_the_allowlist(tmp_path, value):
    env = process_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    env["LLM_BASE_URL_ALLOWLIST"] = value

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "llm_providers.E001" in result.stderr and "LLM_BASE_URL_ALLOWLIST" in result.stderr


def test_the_default_allowlist_allows_no_private_address(tmp_path):
    env = process_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    del env["LLM_BASE_URL_ALLOWLIST"]

    # A developer's .env (make run writes the loopback allowlist there) must not decide.
    code = (
        "import environ; environ.Env.read_env = staticmethod(lambda *a, **k: None)\n"
        "import django; django.setup()\n"
        "from django.conf import settings; print(settings.LLM_BASE_URL_ALLOWLIST)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_quick_start_env_allows_loopback_only(tmp_path):
    path = tmp_path / ".env"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "write_env.py"), str(path)], check=True, timeout=30
    )

    lines = [line for line in path.read_text().splitlines() if line.startswith("LLM_BASE_URL")]

    assert lines == ["LLM_BASE_URL_ALLOWLIST=127.0.0.0/8,::1/128"]
