"""CPU per /v1 request under ASGI, in-process, with many requests open at once.

    .venv/bin/python bench/concurrency/cpu_asgi.py                 # SQLite in a temp dir
    .venv/bin/python bench/concurrency/cpu_asgi.py -n 4000 -c 512 --stream
    .venv/bin/python bench/concurrency/cpu_asgi.py --database-url postgres://…
    .venv/bin/python bench/concurrency/cpu_asgi.py --drop-middleware SessionMiddleware,…

The served ASGI application (config.asgi: body limits, the pooled sync threads, Django)
is called directly on one event loop, `-c` requests open at once, against the provider
stand-in (standin.py, a separate process, answering at once). No socket to the client and
no server: the figure is what one request costs this process — Django, the middleware,
the view, the engine, the aiohttp call, the usage row — in CPU time
(`time.process_time`: every thread of the process), which a loaded machine changes far
less than it changes wall time. Best of --repeat blocks of -n requests, after a warm-up.
"""

import argparse
import asyncio
import gc
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=3000, help="requests per block")
    ap.add_argument("-c", type=int, default=256, help="requests open at once")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stream", action="store_true", help="streamed requests")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    ap.add_argument(
        "--interval",
        type=float,
        default=0,
        help="seconds between a stream's chunks at the stand-in (0: all in one write; 0.05 "
        "as run.sh: one network read per chunk, as from a real model)",
    )
    ap.add_argument("--database-url", default="")
    ap.add_argument("--drop-middleware", default="", help="class names to leave out")
    ap.add_argument("--profile", type=int, default=0, help="then one block under cProfile: top N")
    ap.add_argument(
        "--gc",
        action="store_true",
        help="also the garbage collector's work in the measured blocks: collections, "
        "seconds, the longest pause, objects it found unreachable (cyclic garbage)",
    )
    ap.add_argument(
        "--usage-row",
        choices=["write", "handoff", "none"],
        default="write",
        help="an experiment on the usage row (measurement only, never served): 'handoff' "
        "hands each row to the usage writer thread and back without its INSERT, 'none' "
        "skips the row; the figures are 'write' less what each leaves out",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="switchyard-cpu-asgi-"))
    port = free_port()
    standin = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("standin.py")), "--ports", str(port)]
        + ["--delay", "0", "--chunks", str(args.chunks), "--interval", str(args.interval)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        return run(args, work, port)
    finally:
        standin.terminate()
        standin.wait(10)


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the stand-in did not start")


def run(args, work: Path, port: int) -> int:
    key = setup_django(args, work, port)
    from config.asgi import application

    leave_out_of_the_usage_row(args.usage_row)

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say ok"}]}
    if args.stream:
        body["stream"] = True
    payload = json.dumps(body).encode()
    scope = request_scope(key, payload)

    async def blocks():
        from llm_providers.transport.asessions import aclose_sessions

        try:
            await block(application, scope, payload, min(500, args.n), args.c)  # warm-up
            with CollectorWatch(args.gc) as watch:
                results = [
                    await block(application, scope, payload, args.n, args.c)
                    for _ in range(args.repeat)
                ]
            return results, watch
        finally:
            await aclose_sessions()

    results, watch = asyncio.run(blocks())
    from llm_providers.models import UsageLog

    for ok, cpu, wall in results:
        print(
            f"{'stream' if args.stream else 'plain'} n={args.n} c={args.c}: ok {ok}, "
            f"CPU {1000 * cpu / args.n:.2f} ms/request, wall {args.n / wall:.0f} req/s"
        )
    best = min(cpu for _, cpu, _ in results)
    rows = UsageLog.objects.count()
    print(
        f"best: {1000 * best / args.n:.2f} ms CPU per request; usage rows {rows}"
        + ("" if args.usage_row == "write" else f" (--usage-row {args.usage_row})")
    )
    if args.gc:
        print(watch.summary(args.n * args.repeat))
    if args.profile:
        profile(application, scope, payload, args)
    return 0


class CollectorWatch:
    """gc.callbacks around the measured blocks (when on): what the collector did."""

    def __init__(self, on: bool):
        self.on = on
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self.longest = 0.0
        self.unreachable = 0
        self._started = 0.0

    def __enter__(self):
        if self.on:
            gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc):
        if self.on:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.collections[info["generation"]] += 1
        self.seconds += pause
        self.longest = max(self.longest, pause)
        self.unreachable += info["collected"]

    def summary(self, requests: int) -> str:
        return (
            f"collector: {sum(self.collections)} collections {self.collections} (by generation), "
            f"{1e6 * self.seconds / requests:.0f} µs per request, longest pause "
            f"{1000 * self.longest:.0f} ms, {self.unreachable / requests:.1f} unreachable objects "
            "per request"
        )


def leave_out_of_the_usage_row(what: str) -> None:
    """--usage-row: the writer's INSERT ('handoff') or the whole row ('none') left out."""
    from llm_providers.usage import writer, writes

    if what == "handoff":
        writes.save_usage_rows_durably = lambda rows: [None] * len(rows)
    elif what == "none":

        def asubmit(self, row):
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        writer.UsageWriter.asubmit = asubmit


def setup_django(args, work: Path, port: int) -> str:
    """Settings, a migrated throwaway database and the seeded tenant: its API key."""
    from cryptography.fernet import Fernet

    (work / "prometheus").mkdir()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="bench-only-" + secrets.token_hex(24),
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DATABASE_URL=args.database_url or f"sqlite:///{work / 'cpu.sqlite3'}",
        CACHE_URL=f"filecache://{work / 'cache'}",
        LLM_VALIDATE_ON_STARTUP="false",
        LLM_BASE_URL_ALLOWLIST="127.0.0.0/8",
        LLM_DEFAULT_MAX_CONCURRENT="0",
        SECURE_SSL_REDIRECT="false",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        LLM_MAX_RETRIES="0",
        PROMETHEUS_MULTIPROC_DIR=str(work / "prometheus"),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.gateway import seed

    buf = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, buf
    try:
        seed.setup("openai", f"http://127.0.0.1:{port}/v1")
    finally:
        sys.stdout = sys_stdout
    if args.drop_middleware:
        from django.conf import settings

        drop = set(args.drop_middleware.split(","))
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m.rsplit(".", 1)[-1] not in drop]
    return buf.getvalue().strip().splitlines()[-1]


def request_scope(key: str, payload: bytes) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def one(application, scope: dict, payload: bytes) -> bool:
    """One request through the ASGI application; True when it answered 200 in full."""
    sent = False
    status = None
    done = asyncio.Event()

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await application(dict(scope), receive, send)
    done.set()
    return status == 200


async def block(application, scope, payload, n: int, concurrency: int):
    """(answered, CPU seconds, wall seconds) of n requests, `concurrency` open at once."""
    gate = asyncio.Semaphore(concurrency)

    async def gated():
        async with gate:
            return await one(application, scope, payload)

    cpu, wall = time.process_time(), time.perf_counter()
    ok = sum(await asyncio.gather(*(gated() for _ in range(n))))
    return ok, time.process_time() - cpu, time.perf_counter() - wall


def profile(application, scope, payload, args) -> None:
    """One more block under cProfile (the loop's thread only): the top functions."""
    import cProfile
    import pstats

    async def profiled():
        from llm_providers.transport.asessions import aclose_sessions

        try:
            await block(application, scope, payload, min(500, args.n), args.c)
            profiler = cProfile.Profile()
            profiler.enable()
            await block(application, scope, payload, args.n, args.c)
            profiler.disable()
            return profiler
        finally:
            await aclose_sessions()

    stats = pstats.Stats(asyncio.run(profiled()))
    stats.sort_stats("tottime").print_stats(args.profile)
    stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    raise SystemExit(main())
