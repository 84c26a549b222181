"""scripts/find-python.sh: which interpreter `make` builds the venv with.

Stub interpreters answer the script's probe ("MAJOR.MINOR<TAB>HAS_VENV<TAB>EXECUTABLE"),
so the search order is tested without depending on what this machine has installed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "find-python.sh"
BASH = shutil.which("bash")


def stub(path: Path, version: str, has_venv: int = 1) -> Path:
    """An executable that answers the probe like a Python of `version` at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nprintf '%s\\t%s\\t%s\\n' '{version}' '{has_venv}' '{path}'\n")
    path.chmod(0o755)
    return path


def broken_shim(path: Path) -> Path:
    """Like a pyenv shim for a version that is installed but not selected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "pyenv: $0: command not found" >&2\nexit 127\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def sandbox(tmp_path):
    """An environment in which only the stubs made under tmp_path can be found."""
    bin_dir = tmp_path / "bin"
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "sort").symlink_to(shutil.which("sort"))
    env = {
        "PATH": f"{bin_dir}:{tools}",
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
        "XDG_DATA_HOME": str(tmp_path / "share"),
        "FIND_PYTHON_SKIP_SYSTEM": "1",
    }
    return tmp_path, bin_dir, env


def find(env, **extra):
    return subprocess.run(
        [BASH, str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=30
    )


def test_honours_PYTHON_when_it_is_new_enough():
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    found = result.stdout.strip()
    version = subprocess.run(
        [found, "-c", "import sys; print(sys.version_info >= (3, 12))"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "True"


def test_refuses_a_PYTHON_that_is_too_old_instead_of_searching_on(sandbox):
    tmp_path, bin_dir, env = sandbox
    old = stub(tmp_path / "old" / "python3", "3.11")
    stub(bin_dir / "python3.13", "3.13")

    result = find(env, PYTHON=str(old))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "3.11 is too old" in result.stderr


def test_skips_failing_shims_and_old_pythons_and_takes_the_newest_pyenv_version(sandbox):
    tmp_path, bin_dir, env = sandbox
    broken_shim(bin_dir / "python3.13")
    broken_shim(bin_dir / "python3.12")
    stub(bin_dir / "python3", "3.11")
    pyenv = tmp_path / "pyenv" / "versions"
    stub(pyenv / "3.11.7" / "bin" / "python3", "3.11")
    stub(pyenv / "3.12.1" / "bin" / "python3", "3.12")
    stub(pyenv / "3.13.9" / "bin" / "python3", "3.13")
    newest = stub(pyenv / "3.13.10" / "bin" / "python3", "3.13")

    result = find(env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(newest)


def test_prefers_a_working_python_on_PATH_to_managed_installs(sandbox):
    tmp_path, bin_dir, env = sandbox
    on_path = stub(bin_dir / "python3.12", "3.12")
    stub(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python3", "3.13")

    result = find(env)

    assert result.stdout.strip() == str(on_path)


def test_finds_uv_managed_pythons(sandbox):
    tmp_path, bin_dir, env = sandbox
    stub(bin_dir / "python3", "3.10")
    uv_dir = tmp_path / "share" / "uv" / "python" / "cpython-3.12.8-linux-x86_64-gnu"
    uv_python = stub(uv_dir / "bin" / "python3", "3.12")

    result = find(env)

    assert result.stdout.strip() == str(uv_python)


def test_skips_a_python_without_venv_support_and_says_how_to_add_it(sandbox):
    tmp_path, bin_dir, env = sandbox
    stub(bin_dir / "python3.12", "3.12", has_venv=0)

    result = find(env)

    assert result.returncode == 1
    assert "python3.12-venv" in result.stderr


def test_explains_how_to_get_a_python_when_none_is_found(sandbox):
    tmp_path, bin_dir, env = sandbox
    stub(bin_dir / "python3", "3.11")

    result = find(env)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "no Python >= 3.12" in result.stderr
    assert "python3: Python 3.11 is too old" in result.stderr
    assert "PYTHON=/path/to/python3.12 make run" in result.stderr
