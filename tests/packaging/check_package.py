"""What a Django team does with django-switchyard, run for real (scripts/check-package.sh).

Given the built wheel and sdist, this checks what they hold, installs the wheel into a
fresh virtualenv, and then, for each variant (database × tenant model), runs the commands
of the README's "Use it in your Django project" section exactly as written there, read
from the README itself: `django-admin startproject`, the settings and URLs appended, migrate,
a tenant and its key, `LLMService(...).generate_completion()` against a local provider
stand-in (tests/support/upstream.py), `runserver` and `/v1/chat/completions` with curl.
Then it checks the usage rows those two calls left.

The only changes to the README's commands, each listed in `script_for`: the package name
becomes the wheel's path; the provider's port (8080) and the server's (8000) become free
ones; a PostgreSQL variant appends its DATABASES setting; the own-model variant passes the
organisation's primary key where the README says to. Between the commands the check adds
its own verifications (`manage.py check`, `makemigrations --check`, waiting for the server).

Usage: check_package.py --dist DIR [--database sqlite] [--database postgres://...]
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Use it in your Django project"
PACKAGES = ("tenants", "llm_providers", "build_loop")
OUT_OF_WHEEL = ("config/", "tests/", "bench/", "e2e/", "scripts/", "manage.py")
STEP_TIMEOUT = 600


def log(message: str) -> None:
    print(f"[check-package {time.strftime('%H:%M:%S')}] {message}", flush=True)


class CheckFailed(Exception):
    pass


def expect(condition, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- The README -----------------------------------------------------------------------
def readme_blocks() -> dict[str, str]:
    """The section's `<!-- check-package: NAME -->` code blocks, by name."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    blocks = dict(
        re.findall(r"<!-- check-package: ([a-z-]+) -->\n```sh\n(.*?)```", section, re.DOTALL)
    )
    wanted = {"install", "startproject", "settings", "urls", "migrate", "tenant", "call"}
    wanted |= {"serve", "gateway", "own-model"}
    expect(wanted <= set(blocks), f"README section lacks blocks {sorted(wanted - set(blocks))}")
    return blocks


def count_commands(blocks: dict[str, str]) -> int:
    """Commands of the main path (a heredoc or a continued line is one command)."""
    count = 0
    for name in ("install", "startproject", "settings", "urls", "migrate", "tenant", "call"):
        count += 1 if name in ("settings", "urls", "call") else len(blocks[name].splitlines())
    return count + 2  # serve, gateway


# --- The distribution -----------------------------------------------------------------
def check_dist(dist: Path) -> Path:
    wheels = list(dist.glob("django_switchyard-*.whl"))
    sdists = list(dist.glob("django_switchyard-*.tar.gz"))
    expect(len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist in {dist}")
    names = zipfile.ZipFile(wheels[0]).namelist()
    for package in PACKAGES:
        expect(f"{package}/__init__.py" in names, f"wheel lacks {package}")
        migration = f"{package}/migrations/0001_initial.py"
        expect(migration in names, f"wheel lacks {package}'s migrations")
    expect(
        "llm_providers/templates/admin/llm_providers/usagelog/dashboard.html" in names,
        "wheel lacks the admin templates",
    )
    stray = [n for n in names if n.startswith(OUT_OF_WHEEL)]
    expect(not stray, f"wheel holds files of the reference deployment: {stray[:5]}")
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheels[0]).read(info).decode()
    for line in (
        "Name: django-switchyard",
        "License-Expression: MIT",
        "Classifier: Framework :: Django :: 6.1",
        "Requires-Python: >=3.12",
    ):
        expect(line in metadata.splitlines(), f"wheel metadata lacks {line!r}")
    expect(any(n.endswith("licenses/LICENSE") for n in names), "wheel lacks LICENSE")
    with tarfile.open(sdists[0]) as sdist:
        members = [m.split("/", 1)[1] for m in sdist.getnames() if "/" in m]
    for wanted in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"):
        expect(wanted in members, f"sdist lacks {wanted}")
    stray = [m for m in members if m.startswith(OUT_OF_WHEEL)]
    expect(not stray, f"sdist holds files of the reference deployment: {stray[:5]}")
    log(f"dist ok: {wheels[0].name} ({len(names)} files), {sdists[0].name}")
    return wheels[0]


# --- Processes ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise CheckFailed(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def make_venv(base: Path, wheel: Path, blocks: dict[str, str]) -> Path:
    venv = base / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = blocks["install"].strip()
    expect(install == "pip install django-switchyard", f"unexpected install step {install!r}")
    # The README's command with the wheel for the package name (and the postgres extra,
    # which the README names for PostgreSQL).
    command = f"pip install --disable-pip-version-check -q {shlex.quote(str(wheel))}[postgres]"
    installed = subprocess.run(
        ["bash", "-c", f". {venv}/bin/activate && {command}"], capture_output=True, text=True
    )
    expect(installed.returncode == 0, f"pip install failed:\n{installed.stderr[-4000:]}")
    log(f"wheel installed into a fresh venv in {time.monotonic() - started:.0f} s")
    return venv


# --- One variant ----------------------------------------------------------------------
def databases_setting(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    config = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": urllib.parse.unquote(parts.username or ""),
        "PASSWORD": urllib.parse.unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    return f"DATABASES = {{'default': {config!r}}}"


def script_for(blocks, *, own_model: bool, database: str | None, upstream: int, port: int):
    """The bash script of one variant: the README's commands plus the check's own steps."""
    b = dict(blocks)
    b["call"] = b["call"].replace("127.0.0.1:8080", f"127.0.0.1:{upstream}")
    if own_model:
        b["call"] = b["call"].replace("'acme'", "$TENANT")
    b["serve"] = b["serve"].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    b["gateway"] = b["gateway"].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    steps = [
        b["startproject"],
        b["settings"],
        # The check's own: a PostgreSQL database instead of startproject's SQLite file.
        f"cat >> mysite/settings.py <<'EOF'\n{database}\nEOF\n" if database else "",
        b["urls"],
        b["own-model"] if own_model else b["migrate"] + b["tenant"],
        "python manage.py check --fail-level WARNING\n",
        "python manage.py makemigrations --check --dry-run\n",
        "echo '::call::'\n",
        b["call"],
        b["serve"],
        # Wait for the server (bounded polling), then the README's curl.
        f"for _ in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:{port}/healthz && break;"
        " sleep 0.1; done\n",
        "echo '::gateway::'\n",
        b["gateway"],
        "echo\necho '::rows::'\n",
        'python manage.py shell -c "import json; from llm_providers.models import UsageLog; '
        "print(json.dumps([dict(r, tenant_id=r['tenant_id']) for r in UsageLog.objects.values("
        "'tenant_id', 'endpoint', 'success', 'provider', 'model', 'prompt_tokens', "
        "'completion_tokens', 'error_type')]))\"\n",
        'echo "::tenant:: ${TENANT:-acme}"\n',
    ]
    return "set -euo pipefail\n" + "".join(steps)


def run_variant(name, *, venv, base, blocks, own_model, database_url):
    work = base / name
    work.mkdir()
    upstream_port, port = free_port(), free_port()
    db_name = None
    database = None
    if database_url:
        db_name = f"sy_pkgcheck_{os.getpid()}_{name.replace('-', '_')}"
        admin_db("CREATE", database_url, db_name)
        database = databases_setting(database_url, db_name)
    upstream = subprocess.Popen(
        [sys.executable, "-m", "tests.support.upstream", "--port", str(upstream_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    script = script_for(
        blocks, own_model=own_model, database=database, upstream=upstream_port, port=port
    )
    (work / "steps.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    try:
        wait_for_port(upstream_port)
        # Its own session: runserver (and its autoreloader child) stop with the group.
        # Output to files: the backgrounded server keeps a pipe open long after the end.
        with open(work / "stdout.log", "w") as stdout, open(work / "stderr.log", "w") as stderr:
            proc = subprocess.Popen(
                ["bash", str(work / "steps.sh")],
                cwd=work,
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=STEP_TIMEOUT)
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        out = (work / "stdout.log").read_text()
        err = (work / "stderr.log").read_text()
        if proc.returncode != 0:
            raise CheckFailed(
                f"{name}: a step failed (exit {proc.returncode}); script {work / 'steps.sh'}\n"
                f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-6000:]}"
            )
        verify(name, out, own_model=own_model)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
        if db_name:
            admin_db("DROP", database_url, db_name)
    log(f"{name}: passed in {time.monotonic() - started:.0f} s")


def section(out: str, marker: str, pattern: str) -> str:
    """The line after `::marker::` that matches `pattern` (the backgrounded server prints
    its banner into the same output)."""
    text = out.split(f"::{marker}::", 1)[1]
    for line in text.splitlines():
        if re.match(pattern, line):
            return line
    raise CheckFailed(f"no {marker} output matching {pattern!r} in:\n{text[:3000]}")


def verify(name: str, out: str, *, own_model: bool) -> None:
    call = section(out, "call", r"(True|False) ").split()
    expect(call[0] == "True", f"{name}: generate_completion did not succeed: {call}")
    expect(call[-1].isdigit(), f"{name}: no usage_log_id printed: {call}")
    gateway = json.loads(section(out, "gateway", r"\{"))
    expect(
        gateway["choices"][0]["message"]["content"] == "OK",
        f"{name}: unexpected /v1 answer {gateway}",
    )
    rows = json.loads(section(out, "rows", r"\["))
    tenant = section(out, "tenant", r"\s*\S+\s*$").strip()
    expected_tenant = int(tenant) if own_model else tenant
    calls = [r for r in rows if r["endpoint"] in ("completion", "chat")]
    expect(
        sorted(r["endpoint"] for r in calls) == ["chat", "completion"],
        f"{name}: expected one completion and one chat usage row, got {calls}",
    )
    for row in calls:
        expect(row["success"] is True, f"{name}: failed usage row {row}")
        expect(row["tenant_id"] == expected_tenant, f"{name}: row of tenant {row['tenant_id']!r}")
        expect(row["provider"] == "local" and row["model"] == "gemma-3-270m", f"{name}: {row}")
        expect(row["prompt_tokens"] > 0 and row["completion_tokens"] > 0, f"{name}: {row}")


def admin_db(action: str, url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if action == "CREATE":
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            sys.path.insert(0, str(ROOT))
            from tests.support.pg import drop_database

            drop_database(conn, name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument(
        "--database",
        action="append",
        help="'sqlite' or a postgres:// URL whose role may CREATEDB (repeatable)",
    )
    args = parser.parse_args(argv)
    databases = args.database or ["sqlite"]
    started = time.monotonic()
    try:
        blocks = readme_blocks()
        commands = count_commands(blocks)
        expect(commands < 10, f"the README's path takes {commands} commands, not under ten")
        log(f"README: {commands} commands from pip install to a logged call")
        wheel = check_dist(args.dist)
        with tempfile.TemporaryDirectory(prefix="switchyard-pkgcheck-") as tmp:
            base = Path(tmp)
            venv = make_venv(base, wheel, blocks)
            for database in databases:
                url = None if database == "sqlite" else database
                label = "sqlite" if url is None else "postgresql"
                for own in (False, True):  # tenants.Tenant, then the project's own model
                    run_variant(
                        f"{label}-{'own-model' if own else 'default-model'}",
                        venv=venv,
                        base=base,
                        blocks=blocks,
                        own_model=own,
                        database_url=url,
                    )
    except CheckFailed as exc:
        print(f"check-package: FAILED: {exc}", file=sys.stderr)
        return 1
    log(f"all passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
