"""scripts/write_env.py: the `.env` that `make run` writes on first use."""

import stat
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "write_env.py"


def write_env(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=30
    )


def _parse(path: Path) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_writes_a_usable_fernet_key_and_a_long_secret_key(tmp_path):
    path = tmp_path / ".env"

    result = write_env(path)

    assert result.returncode == 0, result.stderr
    values = _parse(path)
    Fernet(values["FIELD_ENCRYPTION_KEY"].encode())  # raises if not a valid Fernet key
    assert len(values["SECRET_KEY"]) >= 50
    assert "$" not in values["SECRET_KEY"]  # django-environ would try to expand it


def test_each_file_gets_its_own_secrets(tmp_path):
    write_env(tmp_path / "a.env")
    write_env(tmp_path / "b.env")

    a, b = _parse(tmp_path / "a.env"), _parse(tmp_path / "b.env")

    assert a["SECRET_KEY"] != b["SECRET_KEY"]
    assert a["FIELD_ENCRYPTION_KEY"] != b["FIELD_ENCRYPTION_KEY"]


def test_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / ".env"
    write_env(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_never_overwrites_an_existing_env(tmp_path):
    path = tmp_path / ".env"
    path.write_text("SECRET_KEY=the-operators-own\n")

    result = write_env(path)

    assert result.returncode == 0
    assert path.read_text() == "SECRET_KEY=the-operators-own\n"
    assert "leaving it" in result.stdout


def test_relaxes_the_https_settings_for_plain_http_on_localhost(tmp_path):
    path = tmp_path / ".env"
    write_env(path)

    values = _parse(path)

    assert values["DEBUG"] == "false"
    assert values["SECURE_SSL_REDIRECT"] == "false"
    assert values["SESSION_COOKIE_SECURE"] == "false"
    assert values["CSRF_COOKIE_SECURE"] == "false"
    assert values["SECURE_HSTS_SECONDS"] == "0"
