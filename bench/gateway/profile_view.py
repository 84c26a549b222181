"""CPU per /v1 request, in-process, and where it goes (cProfile), against a local nginx.

    .venv/bin/python bench/gateway/profile_view.py              # SQLite in a temp dir
    .venv/bin/python bench/gateway/profile_view.py -n 5000 --database-url postgres://…
    .venv/bin/python bench/gateway/profile_view.py --top 40     # also print the profile

The WSGI application is called directly (no gunicorn, no socket to the client), so the
figure is Django + the view + LLMService + the HTTP call to nginx + the usage row. The
CPU per call (`time.process_time`, best of --repeat blocks of -n calls, no profiler) is
printed first; then the same calls under cProfile, with the cumulative time of each
component scaled to that CPU figure (cProfile's own overhead inflates small functions, so
read the shares, not the absolute µs).
"""

import argparse
import cProfile
import io
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.gateway.bench import NGINX_CONF, NGINX_SERVER, UPSTREAM_BODY  # noqa: E402

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say ok"}],"max_tokens":5}'

# (label, function-name match in pstats: (file suffix, function name))
COMPONENTS = [
    ("Django handler + middleware (whole request)", ("django/core/handlers/wsgi.py", "__call__")),
    ("  the /v1 view (chat_completions)", ("gateway/views.py", "chat_completions")),
    ("    auth (cached key lookup)", ("gateway/views.py", "_authenticate")),
    ("    request.body + JSON parse/validate", ("gateway/wire.py", "parse_chat_request")),
    ("    service_for (cached config)", ("gateway/wire.py", "service_for")),
    ("    LLMService.chat (all of it)", ("llm_providers/engine/service.py", "chat")),
    ("      build request (adapter)", ("providers/openai.py", "build_chat_request")),
    ("      http.send (all of it)", ("llm_providers/transport/send.py", "send")),
    ("        prepare request", ("llm_providers/transport/prepare.py", "prepare")),
    ("        Session.send", ("requests/sessions.py", "send")),
    ("        HTTPAdapter.send", ("requests/adapters.py", "send")),
    ("        urllib3 urlopen", ("urllib3/connectionpool.py", "urlopen")),
    ("        read body", ("llm_providers/transport/send.py", "_read_body")),
    ("      parse JSON reply", ("providers/base.py", "parse_json")),
    ("      parse chat response", ("providers/openai.py", "parse_chat_response")),
    ("      pricing (cost_usd)", ("llm_providers/usage/pricing.py", "cost_usd")),
    ("      usage INSERT (+ autocommit)", ("llm_providers/usage/writes.py", "insert_usage_log")),
    ("    completion_body + json.dumps", ("json/__init__.py", "dumps")),
    ("    Server-Timing", ("gateway/views.py", "_server_timing")),
    ("  HttpResponse()", ("django/http/response.py", "__init__")),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--port", type=int, default=18093)
    ap.add_argument(
        "--drop-middleware",
        default="",
        help="middleware class names to leave out (what they cost: compare the CPU per call)",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="switchyard-profile-"))
    (work / "nginx-body").mkdir()
    servers = NGINX_SERVER.format(port=args.port, log="/dev/null", body=UPSTREAM_BODY)
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, servers=servers))
    nginx = subprocess.Popen(
        ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        return run(args, work)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)


def run(args, work: Path) -> int:
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="bench-only-" + secrets.token_hex(24),
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DATABASE_URL=args.database_url or f"sqlite:///{work / 'profile.sqlite3'}",
        LLM_VALIDATE_ON_STARTUP="false",
        SECURE_SSL_REDIRECT="false",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        LLM_MAX_RETRIES="0",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.gateway import seed

    buf = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, buf
    try:
        seed.setup("openai", f"http://127.0.0.1:{args.port}/v1")
    finally:
        sys.stdout = sys_stdout
    key = buf.getvalue().strip().splitlines()[-1]

    if args.drop_middleware:
        from django.conf import settings

        drop = set(args.drop_middleware.split(","))
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m.rsplit(".", 1)[-1] not in drop]
    from config.wsgi import application

    environ_base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call():
        environ = dict(environ_base)
        environ["wsgi.input"] = io.BytesIO(BODY)
        result = application(environ, start_response)
        b"".join(result)
        result.close()

    for _ in range(200):
        call()
    assert all(s.startswith("200") for s in statuses), statuses[-1]

    blocks = []
    for _ in range(args.repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            call()
        blocks.append(
            ((time.process_time() - c0) / args.n * 1e6, (time.perf_counter() - w0) / args.n * 1e6)
        )
    cpu = min(b[0] for b in blocks)
    wall = min(b[1] for b in blocks)
    print(f"CPU per call: {cpu:.0f} µs (best of {args.repeat} × {args.n}; wall {wall:.0f} µs)")
    print("  blocks (cpu µs, wall µs): " + ", ".join(f"{c:.0f}/{w:.0f}" for c, w in blocks))
    try:
        load = os.getloadavg()[0]
        print(f"  load average (1 min): {load:.2f}")
    except OSError:
        pass

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.n):
        call()
    profile.disable()
    if os.environ.get("PROFILE_DUMP"):
        profile.dump_stats(os.environ["PROFILE_DUMP"])
    stats = pstats.Stats(profile)
    total = None
    rows = []
    for label, (suffix, name) in COMPONENTS:
        cum = 0.0
        for (filename, _, func), (_, _, _, ct, _) in stats.stats.items():
            if func == name and filename.endswith(suffix):
                cum = max(cum, ct)
        if total is None:
            total = cum
        rows.append((label, cum))
    print("\ncomponent (cProfile cumulative, scaled to the CPU per call) | µs | share")
    for label, cum in rows:
        share = cum / total if total else 0
        print(f"{label:<48} {share * cpu:7.0f} {share:6.1%}")
    if args.top:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    assert all(s.startswith("200") for s in statuses), statuses[-1]
    return 0


if __name__ == "__main__":
    sys.exit(main())
