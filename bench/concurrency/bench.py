"""Concurrency benchmark (issue 9): many open requests against a provider with a model's timing.

    bench/concurrency/run.sh                       # the whole run (see run.sh for the knobs)
    python3 bench/concurrency/bench.py run [...]   # what run.sh calls
    python3 bench/concurrency/bench.py drive ...   # the load generator alone (JSON on stdout)
    python3 bench/concurrency/bench.py probe URL   # the /healthz prober alone

Standard library only (the system python3 runs it), everything on 127.0.0.1, every loop
bounded by a duration or a deadline. Targets, each measured with the same load generator:

- `direct`: the provider stand-in (standin.py) itself;
- `litellm`: LiteLLM's proxy (its own venv) routed to the stand-in;
- `switchyard`: a Switchyard checkout (`--switchyard-dir`) started with its own
  `scripts/run.sh` (what `make serve` runs), a throwaway SQLite database, one tenant with
  an `openai` config whose base URL is the stand-in.

Why a Python load generator and not wrk: wrk does not record latencies above its
`--timeout` (they vanish from the percentiles), counts "timeouts" by re-scanning open
connections every 2 s (one slow request is counted many times), cannot check that a
stream ended with `data: [DONE]`, and has no time to first event. This one is built on
asyncio protocols (no task per chunk), so it holds 1,024 connections on a fraction of one
core; a client gives up after `--timeout` s (closes the connection, counts a timeout) and
opens a new connection, as an SDK with a timeout would.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[concurrency {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


# --------------------------------------------------------------------------------------
# Load generator
# --------------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.ok = 0
        self.latencies = []  # seconds, successful answers only (all of them, no cap)
        self.first_event = []  # streams: seconds to the first `data:` event
        self.status = {}  # non-200 statuses
        self.bad_body = 0  # 200 without a complete answer (no choices / no [DONE] / error)
        self.timeouts = 0
        self.conn_errors = 0  # connect refused/reset
        self.closed = 0  # server closed the connection before the answer was complete
        self.open_at_end = 0  # requests still waiting when the duration was up


class Slot(asyncio.Protocol):
    """One client connection that sends the request again as soon as the answer is complete."""

    def __init__(self, load):
        self.load = load
        self.transport = None
        self.active = False
        self.timer = None

    # connection management
    def start(self):
        if self.load.running:
            asyncio.ensure_future(self._connect())

    async def _connect(self):
        load = self.load
        try:
            await load.loop.create_connection(lambda: self, load.host, load.port)
        except OSError:
            load.stats.conn_errors += 1
            if load.running:
                load.loop.call_later(0.1, self.start)

    def connection_made(self, transport):
        self.transport = transport
        self.send()

    def connection_lost(self, exc):
        self.transport = None
        if self.active:
            self.active = False
            self.timer.cancel()
            if self.state == 4:  # a body delimited by the end of the connection
                self.complete()
                return
            if self.load.running:
                self.load.stats.closed += 1
        self.load.slots_done(self)

    # one request
    def send(self):
        load = self.load
        if not load.running:
            self.transport.close()
            return
        self.active = True
        self.buf = bytearray()
        self.body = []
        self.state = 0
        self.status = 0
        self.first = None
        self.keep_alive = True
        self.t0 = load.loop.time()
        self.timer = load.loop.call_later(load.timeout, self.on_timeout)
        self.transport.write(load.request)

    def on_timeout(self):
        if self.active:
            self.active = False
            self.load.stats.timeouts += 1
            self.transport.abort()  # connection_lost opens a new connection

    def data_received(self, data):
        if not self.active:
            return
        buf = self.buf
        buf += data
        while self.active:
            if self.state == 0:  # status line and headers
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[: end + 4]
                self.status = int(lines[0].split(" ", 2)[1])
                self.length = None
                chunked = False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    value = value.strip().lower()
                    if name == "content-length":
                        self.length = int(value)
                    elif name == "transfer-encoding" and "chunked" in value:
                        chunked = True
                    elif name == "connection" and value == "close":
                        self.keep_alive = False
                if chunked:
                    self.state = 2
                elif self.length is not None:
                    self.state = 1
                else:
                    self.state = 4
                    self.keep_alive = False
            elif self.state == 1:  # Content-Length body
                if len(buf) < self.length:
                    return
                self.body.append(bytes(buf[: self.length]))
                del buf[: self.length]
                self.complete()
                return
            elif self.state == 2:  # chunk size line
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                if size == 0:
                    if buf.find(b"\r\n\r\n", end) < 0 and bytes(buf[end : end + 4]) != b"\r\n\r\n":
                        return  # wait for the (empty) trailer
                    self.complete()
                    return
                if len(buf) < end + 2 + size + 2:
                    return
                piece = bytes(buf[end + 2 : end + 2 + size])
                del buf[: end + 2 + size + 2]
                if self.first is None and b"data:" in piece:
                    self.first = self.load.loop.time()
                self.body.append(piece)
            elif self.state == 4:  # until the connection closes
                if buf:
                    if self.first is None and b"data:" in buf:
                        self.first = self.load.loop.time()
                    self.body.append(bytes(buf))
                    del buf[:]
                return

    def complete(self):
        load = self.load
        now = load.loop.time()
        self.active = False
        self.timer.cancel()
        stats = load.stats
        body = b"".join(self.body)
        if self.status != 200:
            stats.status[self.status] = stats.status.get(self.status, 0) + 1
        elif load.stream and (b"data: [DONE]" not in body or b'"error"' in body):
            stats.bad_body += 1
        elif not load.stream and b'"choices"' not in body:
            stats.bad_body += 1
        else:
            stats.ok += 1
            stats.latencies.append(now - self.t0)
            if load.stream and self.first is not None:
                stats.first_event.append(self.first - self.t0)
        if self.transport is None:
            self.load.slots_done(self)
        elif self.keep_alive and load.running:
            self.send()
        else:
            self.transport.close()


class Load:
    def __init__(self, args):
        self.host, self.port = args.host, args.port
        self.stream = args.stream
        self.timeout = args.timeout
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say ok."}],
            "max_tokens": 32,
        }
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        raw = json.dumps(body, separators=(",", ":")).encode()
        self.request = (
            f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
            f"Authorization: Bearer {args.key}\r\nContent-Type: application/json\r\n"
            f"Accept: {'text/event-stream' if self.stream else 'application/json'}\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n"
        ).encode() + raw
        self.stats = Stats()
        self.running = False
        self.n = args.connections
        self.duration = args.duration

    def slots_done(self, slot):
        if self.running:  # reconnect: a closed or timed-out connection is replaced
            slot.start()

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.running = True
        slots = [Slot(self) for _ in range(self.n)]
        started = self.loop.time()
        for s in slots:
            s.start()
        await asyncio.sleep(self.duration)
        elapsed = self.loop.time() - started
        self.running = False
        for s in slots:
            if s.active:
                self.stats.open_at_end += 1
                s.active = False
                s.timer.cancel()
            if s.transport is not None:
                s.transport.abort()
        await asyncio.sleep(0.2)
        st = self.stats
        return {
            "connections": self.n,
            "duration_s": round(elapsed, 3),
            "ok": st.ok,
            "rps": st.ok / elapsed,
            "p50_s": pct(st.latencies, 50),
            "p99_s": pct(st.latencies, 99),
            "first_event_p50_s": pct(st.first_event, 50),
            "first_event_p99_s": pct(st.first_event, 99),
            "status": {str(k): v for k, v in st.status.items()},
            "bad_body": st.bad_body,
            "timeouts": st.timeouts,
            "conn_errors": st.conn_errors,
            "closed": st.closed,
            "open_at_end": st.open_at_end,
            "errors": sum(st.status.values())
            + st.bad_body
            + st.timeouts
            + st.conn_errors
            + st.closed,
        }


# --------------------------------------------------------------------------------------
# /healthz prober (a separate process during each load)
# --------------------------------------------------------------------------------------


async def probe_once(host, port, path, timeout):
    t0 = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n")
            status = int(head.split(b" ", 2)[1])
            await reader.read()  # to the end (Connection: close)
        return time.monotonic() - t0, status
    except TimeoutError:
        return None, "timeout"
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        return time.monotonic() - t0, "error"
    finally:
        if writer is not None:
            writer.close()


async def probe(args):
    """Every `interval` s, a GET on a new connection (as a load balancer probes)."""
    tasks = []
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        tasks.append(
            asyncio.ensure_future(probe_once(args.host, args.port, args.path, args.timeout))
        )
        await asyncio.sleep(args.interval)
    results = await asyncio.gather(*tasks)
    lat = [r[0] for r in results if r[1] == 200]
    timeouts = sum(1 for r in results if r[1] == "timeout")
    # A probe that timed out took at least `timeout`: it is in the percentiles as that.
    everything = lat + [args.timeout] * timeouts
    return {
        "probes": len(results),
        "ok": len(lat),
        "timeouts": timeouts,
        "errors": sum(1 for r in results if r[1] not in (200, "timeout")),
        "p50_ms": None if not everything else pct(everything, 50) * 1000,
        "p99_ms": None if not everything else pct(everything, 99) * 1000,
        "timeout_s": args.timeout,
    }


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


def proc_table():
    """{pid: (ppid, rss_bytes, cpu_s)} of every live process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rpartition(")")[2].split()
            rss = int((d / "statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
        out[int(d.name)] = (int(fields[1]), rss, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def tree(root: int, table=None):
    table = table or proc_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            pids.append(pid)
            todo.extend(children.get(pid, []))
    return pids, table


def tree_usage(root: int):
    pids, table = tree(root)
    return sum(table[p][1] for p in pids), sum(table[p][2] for p in pids), len(pids)


class Processes:
    """Everything this run started; stopped (whole process trees, by pid) on exit."""

    def __init__(self, pidfile: Path):
        self.procs = []
        self.pidfile = pidfile

    def start(self, name, cmd, *, env, cwd, logfile: Path):
        out = open(logfile, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        with open(self.pidfile, "a") as f:  # run.sh's trap stops these if this script dies
            f.write(f"{proc.pid}\n")
        return proc

    def stop(self, proc, timeout=30.0):
        """SIGTERM the root (a server's own shutdown), then SIGKILL what is left of its tree."""
        if proc.poll() is not None:
            return
        pids, _ = tree(proc.pid)
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for _, proc in reversed(self.procs):
            self.stop(proc, timeout=15)


def settle(root: int, name: str, *, limit: float = 120.0) -> float:
    """Wait (bounded) until a server's process tree is idle: <10% of a core over 2 s.

    Its health URL answers before every worker has booted (LiteLLM's second worker takes
    a minute to import on this machine); a load started then measures the boot.
    """
    t0 = time.monotonic()
    _, cpu, _ = tree_usage(root)
    while time.monotonic() - t0 < limit:
        time.sleep(2.0)
        _, now, _ = tree_usage(root)
        if now - cpu < 0.2:
            return time.monotonic() - t0
        cpu = now
    log(f"{name} still busy {limit:.0f} s after it answered; measuring anyway")
    return time.monotonic() - t0


def http_json(url, timeout=5.0, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_http(url, *, timeout, proc, name):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited early (code {proc.returncode}); see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not answer {url} within {timeout:.0f}s")


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------

LITELLM_CONF = """model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{port}/v1
      api_key: sk-bench-fake-key-0001
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


class Target:
    def __init__(self, name, port, upstream_port, key, health_path, path="/v1/chat/completions"):
        self.name, self.port, self.upstream_port = name, port, upstream_port
        self.key, self.health_path, self.path = key, health_path, path
        self.probe_port = None  # Switchyard's probe port (SERVER_HEALTH_PORT), also probed
        self.proc = None
        self.start_fn = None
        self.restarts = 0


def main_run(args) -> int:
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - {"direct", "litellm", "switchyard"}
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}")
    counts = [int(c) for c in args.concurrency.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    sw_dir = Path(args.switchyard_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="switchyard-concurrency-"))
    procs = Processes(Path(args.pidfile) if args.pidfile else work / "pids")
    pb = args.port_base
    ports = {
        "direct": pb + 1,
        "up_litellm": pb + 2,
        "up_switchyard": pb + 3,
        "litellm": pb + 20,
        "switchyard": pb + 30,
        "switchyard_probe": pb + 31,
    }
    log(f"work directory {work}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "cells": [],
    }
    try:
        # -- the provider stand-in: one process, one port per client ----------------------
        standin = procs.start(
            "standin",
            [
                sys.executable,
                str(HERE / "standin.py"),
                "--ports",
                ",".join(str(ports[p]) for p in ("direct", "up_litellm", "up_switchyard")),
                "--delay",
                str(args.delay),
                "--chunks",
                str(args.chunks),
                "--interval",
                str(args.interval),
            ],
            env=os.environ.copy(),
            cwd=ROOT,
            logfile=work / "standin.log",
        )
        wait_http(
            f"http://127.0.0.1:{ports['direct']}/healthz", timeout=15, proc=standin, name="standin"
        )
        stats_url = f"http://127.0.0.1:{ports['direct']}/stats"

        tg = {}
        if "direct" in targets:
            t = Target(
                "direct", ports["direct"], ports["direct"], "sk-bench-fake-key-0001", "/healthz"
            )
            t.proc = standin
            tg["direct"] = t

        if "litellm" in targets:
            master = "sk-bench-master-" + secrets.token_hex(4)
            (work / "litellm.yaml").write_text(
                LITELLM_CONF.format(port=ports["up_litellm"], master_key=master)
            )
            lenv = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            lenv.update(
                LITELLM_LOCAL_MODEL_COST_MAP="True",
                LITELLM_LOG="ERROR",
                LITELLM_TELEMETRY="False",
                DISABLE_SCHEMA_UPDATE="True",
            )
            t = Target(
                "litellm", ports["litellm"], ports["up_litellm"], master, "/health/liveliness"
            )

            def start_litellm(t=t, lenv=lenv):
                t.proc = procs.start(
                    "litellm",
                    [
                        str(Path(args.litellm_venv) / "bin" / "litellm"),
                        "--config",
                        str(work / "litellm.yaml"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(t.port),
                        "--num_workers",
                        str(args.litellm_workers),
                    ],
                    env=lenv,
                    cwd=work,
                    logfile=work / "litellm.log",
                )
                wait_http(
                    f"http://127.0.0.1:{t.port}{t.health_path}",
                    timeout=args.start_timeout,
                    proc=t.proc,
                    name="litellm",
                )

            t.start_fn = start_litellm
            tg["litellm"] = t

        if "switchyard" in targets:
            db = work / "switchyard.sqlite3"
            # SWITCHYARD_DATABASE_URL (e.g. postgres://…): serve from that database instead
            # of a throwaway SQLite file (the tenant is re-seeded from scratch there).
            db_url = os.environ.get("SWITCHYARD_DATABASE_URL") or f"sqlite:///{db}"
            senv = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "SECRET_KEY": "bench-only-" + secrets.token_hex(24),
                "FIELD_ENCRYPTION_KEY": _fernet_key(),
                "DATABASE_URL": db_url,
                "CACHE_URL": f"filecache://{work / 'cache'}",
                "DEBUG": "false",
                "SECURE_SSL_REDIRECT": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LLM_VALIDATE_ON_STARTUP": "false",
                "LLM_MAX_RETRIES": "0",
                # One tenant carries the whole load: the per-tenant default cap of open
                # calls per process (issue 11, 8 by default) would measure the cap, not
                # the server. An operator raises it the same way (or per tenant).
                "LLM_DEFAULT_MAX_CONCURRENT": os.environ.get("LLM_DEFAULT_MAX_CONCURRENT", "0"),
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(sw_dir),
                "BIND_ADDRESS": "127.0.0.1",
                "PORT": str(ports["switchyard"]),
                "SERVER_HEALTH_PORT": str(ports["switchyard_probe"]),
            }
            py = str(sw_dir / ".venv" / "bin" / "python")
            subprocess.run([py, "manage.py", "migrate", "-v0"], env=senv, cwd=sw_dir, check=True)
            out = subprocess.run(
                [py, str(HERE / "seed.py"), f"http://127.0.0.1:{ports['up_switchyard']}/v1"],
                env=senv,
                cwd=sw_dir,
                check=True,
                capture_output=True,
                text=True,
            )
            t = Target(
                "switchyard",
                ports["switchyard"],
                ports["up_switchyard"],
                out.stdout.strip().splitlines()[-1],
                "/healthz",
            )
            t.probe_port = ports["switchyard_probe"]
            t.db = db
            t.db_url = db_url if db_url.startswith("postgres") else None
            t.py = py

            def start_switchyard(t=t, senv=senv):
                t.proc = procs.start(
                    "switchyard",
                    ["bash", "-c", args.switchyard_cmd],
                    env=senv,
                    cwd=sw_dir,
                    logfile=work / "switchyard.log",
                )
                wait_http(
                    f"http://127.0.0.1:{t.port}/healthz",
                    timeout=args.start_timeout,
                    proc=t.proc,
                    name="switchyard",
                )

            t.start_fn = start_switchyard
            tg["switchyard"] = t

        for t in tg.values():
            if t.start_fn:
                log(f"starting {t.name}")
                t.start_fn()
        for t in tg.values():
            if t.start_fn:
                log(f"{t.name} idle {settle(t.proc.pid, t.name):.0f} s after answering")
        result["server"] = {
            "switchyard_dir": str(sw_dir),
            "switchyard_cmd": args.switchyard_cmd,
            "switchyard_head": _git_head(sw_dir),
            "env": {
                k: os.environ[k]
                for k in sorted(os.environ)
                if k.startswith(
                    ("WEB_", "SERVER_", "GUNICORN", "UVICORN", "GRANIAN", "TASK_WORKERS", "LLM_")
                )
            },
        }

        def upstream(t):
            return http_json(stats_url)[str(t.upstream_port)]

        def rows(t):
            if t.name != "switchyard":
                return None
            # A stream whose client left is logged with `client_disconnected` in its
            # metadata (success or not): counted apart, it is not an answer the client got.
            if t.db_url:
                return _pg_rows(t.py, t.db_url)
            con = sqlite3.connect(f"file:{t.db}?mode=ro", uri=True, timeout=30)
            try:
                got = con.execute(
                    "SELECT count(*), coalesce(sum(success), 0), coalesce(sum(coalesce("
                    "json_extract(metadata, '$.client_disconnected'), 0) = 1), 0) "
                    "FROM llm_usage_logs WHERE tenant_id = ?",
                    ("bench_tenant",),
                ).fetchone()
                complete = con.execute(
                    "SELECT count(*) FROM llm_usage_logs WHERE tenant_id = ? AND success = 1 AND "
                    "coalesce(json_extract(metadata, '$.client_disconnected'), 0) != 1",
                    ("bench_tenant",),
                ).fetchone()[0]
            finally:
                con.close()
            return {
                "rows": got[0],
                "success": got[1],
                "failed": got[0] - got[1],
                "client_left": got[2],
                "complete": complete,
            }

        def settled_rows(t):
            """The row counts once they stop changing for 1 s (rows follow answers by a few ms)."""
            got = rows(t)
            if got is None:
                return None
            end = time.monotonic() + 5
            while time.monotonic() < end:
                time.sleep(1.0)
                again = rows(t)
                if again == got:
                    break
                got = again
            return got

        def drain(t, last):
            """Wait (bounded) until the target has no call open at the stand-in and starts none."""
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.drain_max:
                s = upstream(t)
                if s["open"] == 0 and (s["last_start"] is None or s["last_start"] >= 1.0):
                    return round(time.monotonic() - t0, 1), False
                time.sleep(0.25)
            if last:  # nothing follows on this target: no need to start it again
                return round(time.monotonic() - t0, 1), "busy"
            # Still working through requests whose clients left: restart it, so the next
            # load starts clean (counted; its in-flight calls are the ones lost).
            log(f"{t.name} still busy after {args.drain_max:.0f}s: restarting it")
            procs.stop(t.proc, timeout=30)
            t.restarts += 1
            t.start_fn()
            settle(t.proc.pid, t.name)
            return round(time.monotonic() - t0, 1), "restarted"

        def load(t, n, mode, duration):
            cmd = [
                sys.executable,
                str(HERE / "bench.py"),
                "drive",
                "--port",
                str(t.port),
                "--path",
                t.path,
                "--key",
                t.key,
                "--connections",
                str(n),
                "--duration",
                str(duration),
                "--timeout",
                str(args.timeout),
            ] + (["--stream"] if mode == "stream" else [])
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

        # -- warm-up: a short light load on each, not measured ---------------------------
        for t in tg.values():
            if args.warmup > 0:
                for mode in modes:
                    p = load(t, 8, mode, args.warmup)
                    p.communicate(timeout=args.warmup + args.timeout + 30)
                drain(t, False)

        last_cell = (counts[-1], modes[-1])
        for n in counts:
            for mode in modes:
                for t in tg.values():
                    cell = {"target": t.name, "n": n, "mode": mode}
                    up0, rows0 = upstream(t), rows(t)
                    rss0, cpu0, nproc = tree_usage(t.proc.pid)
                    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)

                    def prober(port, path):
                        return subprocess.Popen(
                            [
                                sys.executable,
                                str(HERE / "bench.py"),
                                "probe",
                                "--port",
                                str(port),
                                "--path",
                                path,
                                "--duration",
                                str(args.duration),
                                "--interval",
                                str(args.probe_interval),
                                "--timeout",
                                str(args.probe_timeout),
                            ],
                            stdout=subprocess.PIPE,
                            text=True,
                        )

                    probers = {"healthz": prober(t.port, t.health_path)}
                    if t.probe_port:
                        probers["healthz_probe_port"] = prober(t.probe_port, "/healthz")
                    driver = load(t, n, mode, args.duration)
                    peak = rss0
                    deadline = time.monotonic() + args.duration + args.timeout + 30
                    while driver.poll() is None and time.monotonic() < deadline:
                        peak = max(peak, tree_usage(t.proc.pid)[0])
                        time.sleep(0.5)
                    cpu1 = tree_usage(t.proc.pid)[1]
                    cell["load"] = json.loads(driver.communicate(timeout=30)[0])
                    after_load = upstream(t)
                    for key, p in probers.items():
                        cell[key] = json.loads(p.communicate(timeout=args.probe_timeout + 30)[0])
                    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    # the load generator's and prober's own CPU: a saturated client shows here
                    client_cpu = (kids1.ru_utime + kids1.ru_stime) - (
                        kids0.ru_utime + kids0.ru_stime
                    )
                    cell["drain_s"], cell["restarted"] = drain(t, (n, mode) == last_cell)
                    up1, rows1 = upstream(t), settled_rows(t)
                    cell["server"] = {
                        "processes": nproc,
                        "rss_before_mb": rss0 / 2**20,
                        "rss_peak_mb": peak / 2**20,
                        "rss_per_open_kb": (peak - rss0) / 1024 / n,
                        "cpu_s": cpu1 - cpu0,
                    }
                    cell["client_cpu_s"] = client_cpu
                    cell["upstream"] = {
                        k: up1[k] - up0[k]
                        for k in ("started", "answered", "completed", "abandoned")
                    }
                    # calls the target made after its clients had gone (load over)
                    cell["upstream"]["started_after_load"] = up1["started"] - after_load["started"]
                    if rows0 is not None:
                        cell["rows"] = {k: rows1[k] - rows0[k] for k in rows1}
                        # One row per call that reached the provider: each answer's (complete,
                        # or marked client_disconnected) and each call cancelled before any
                        # answer because its client left (failed, `cancelled`).
                        cell["rows_equal_answers"] = (
                            cell["rows"]["rows"] == cell["upstream"]["started"]
                            and cell["rows"]["rows"] - cell["rows"]["failed"]
                            <= cell["upstream"]["answered"]
                        )
                    result["cells"].append(cell)
                    log(_cell_line(cell))
        result["uptime_after"] = subprocess.run(
            ["uptime"], capture_output=True, text=True
        ).stdout.strip()

        if "switchyard" in tg:
            # Stopped the way an operator stops it (SIGTERM), then the final count.
            t = tg["switchyard"]
            procs.stop(t.proc, timeout=30)
            result["accounting"] = {
                "rows": settled_rows(t),
                "upstream": upstream(t),
                "restarts": t.restarts,
            }
        result["restarts"] = {t.name: t.restarts for t in tg.values()}
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    finally:
        procs.stop_all()
        failed = [c for c in result.get("cells", []) if c.get("load", {}).get("errors")]
        if args.keep or failed:
            # A cell with errors keeps its logs: a rare failure must be readable afterwards.
            why = "" if args.keep else f" ({len(failed)} cell(s) had errors: see its logs)"
            log(f"kept {work}{why}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"concurrency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(render(result))
    log(f"raw figures: {out.relative_to(ROOT)}")
    return 0


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


_PG_ROWS = """
import json, sys
import psycopg
left = "coalesce((metadata->>'client_disconnected')::boolean, false)"
with psycopg.connect(sys.argv[1]) as con:
    total, success, client_left = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE " + left
        + ") FROM llm_usage_logs WHERE tenant_id = 'bench_tenant'"
    ).fetchone()
    complete = con.execute(
        "SELECT count(*) FROM llm_usage_logs WHERE tenant_id = 'bench_tenant' AND success"
        " AND NOT " + left
    ).fetchone()[0]
print(json.dumps({"rows": total, "success": success, "failed": total - success,
                  "client_left": client_left, "complete": complete}))
"""


def _pg_rows(py: str, url: str) -> dict:
    """The rows() counts on PostgreSQL, with Switchyard's own venv (it has psycopg)."""
    out = subprocess.run(
        [py, "-c", _PG_ROWS, url], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def _git_head(path: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(path), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _cell_line(c) -> str:
    ld, h = c["load"], c["healthz"]
    return (
        f"{c['mode']:<6} n={c['n']:<5} {c['target']:<10} {ld['rps']:7.1f} req/s "
        f"p50 {_s(ld['p50_s'])} p99 {_s(ld['p99_s'])} "
        f"errors {ld['errors']} (timeouts {ld['timeouts']}) "
        f"open@end {ld['open_at_end']} healthz p50/p99 {_ms(h['p50_ms'])}/{_ms(h['p99_ms'])} "
        f"probe port {_probe_ms(c.get('healthz_probe_port'))} "
        f"drain {c['drain_s']}s {c['restarted'] or ''} "
        f"rss {c['server']['rss_before_mb']:.0f}->{c['server']['rss_peak_mb']:.0f} MB "
        f"upstream {c['upstream']} rows {c.get('rows')}"
    )


def _probe_ms(h) -> str:
    """p50 / p99 ms of a prober's result ('-' without one), its timeouts and errors after."""
    if h is None:
        return "-"
    out = f"{_ms(h['p50_ms'])} / {_ms(h['p99_ms'])}"
    if h["timeouts"]:
        out += f" ({h['timeouts']} t/o)"
    if h["errors"]:
        out += f" ({h['errors']} errors)"
    return out


def _s(v):
    return "-" if v is None else f"{v:.2f}s"


def _ms(v):
    return "-" if v is None else f"{v:.0f}"


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def render(result) -> str:
    cells = result["cells"]
    st = result["settings"]
    sv = result["server"]
    direct = {(c["mode"], c["n"]): c for c in cells if c["target"] == "direct"}
    lines = [
        f"Measured {result['when']}; `{result['uptime_before']}` before, "
        f"`{result.get('uptime_after', '?')}` after. {st['duration']:g} s per cell, "
        f"client timeout {st['timeout']:g} s, stand-in: {st['delay']:g} s per answer, "
        f"streams of {st['chunks']} chunks {st['interval'] * 1000:g} ms apart. "
        f"Switchyard: `{st['switchyard_cmd']}` in `{sv['switchyard_dir']}` "
        f"({sv['switchyard_head']}), env {sv['env'] or '{}'}.",
        "",
        "| mode | open | target | req/s | % of direct | p50 / p99 s | added p50 / p99 s "
        "| 1st event p50 s | errors (timeouts) | /healthz p50 / p99 ms "
        "| probe port /healthz p50 / p99 ms | RSS KB per open req "
        "| after the load "
        "| one usage row per call |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in cells:
        ld, h, mem = c["load"], c["healthz"], c["server"]
        d = direct.get((c["mode"], c["n"]))
        share = f"{100 * ld['rps'] / d['load']['rps']:.0f}%" if d and d["load"]["rps"] else "-"
        if (
            d
            and c["target"] != "direct"
            and ld["p50_s"] is not None
            and d["load"]["p50_s"] is not None
        ):
            added = (
                f"{ld['p50_s'] - d['load']['p50_s']:+.2f} / {ld['p99_s'] - d['load']['p99_s']:+.2f}"
            )
        else:
            added = "-"
        lat = "-" if ld["p50_s"] is None else f"{ld['p50_s']:.2f} / {ld['p99_s']:.2f}"
        errs = f"{ld['errors']} ({ld['timeouts']})"
        hz = f"{_ms(h['p50_ms'])} / {_ms(h['p99_ms'])}" + (
            f" ({h['timeouts']} t/o)" if h["timeouts"] else ""
        )
        probe_hz = _probe_ms(c.get("healthz_probe_port"))
        if c["restarted"] == "restarted":
            after = f"busy {c['drain_s']:g} s: restarted"
        elif c["restarted"] == "busy":
            after = f"still busy after {c['drain_s']:g} s"
        else:
            after = f"idle in {c['drain_s']:g} s"
        if c["upstream"]["started_after_load"]:
            after += f"; {c['upstream']['started_after_load']} calls started after the load"
        first = "-" if ld.get("first_event_p50_s") is None else f"{ld['first_event_p50_s']:.2f}"
        up = c["upstream"]
        acc = "-"
        if "rows" in c:
            r = c["rows"]
            acc = (
                f"{'yes' if c['rows_equal_answers'] else '**no**'}: {r['rows']} rows / "
                f"{up['started']} calls, {up['answered']} answered"
            )
            extra = []
            if up["started"] != up["answered"]:
                extra.append(f"{up['started'] - up['answered']} calls dropped before any answer")
            if r["client_left"]:
                extra.append(f"{r['client_left']} rows say the client left")
            if r["failed"]:
                extra.append(f"{r['failed']} failed rows")
            if extra:
                acc += " (" + ", ".join(extra) + ")"
        lines.append(
            f"| {c['mode']} | {c['n']} | {c['target']} | {ld['rps']:.1f} | {share} | {lat} "
            f"| {added} | {first} | {errs} | {hz} | {probe_hz} "
            f"| {mem['rss_per_open_kb']:.0f} | {after} "
            f"| {acc} |"
        )
    acc = result.get("accounting")
    if acc:
        r, u = acc["rows"], acc["upstream"]
        lines += [
            "",
            f"Switchyard over the whole run (warm-up included), counted after its SIGTERM stop: "
            f"{r['rows']} usage rows for {u['answered']} answers the stand-in gave "
            f"({u['started']} calls; {u.get('completed', '?')} answers sent in full, "
            f"{u['abandoned']} cut off because Switchyard closed the connection) — one row per "
            f"call: **{'yes' if r['rows'] == u['started'] else 'no'}**; "
            f"{r['complete']} rows of complete answers, {r['client_left']} rows marked "
            f"`client_disconnected`, {r['failed']} failed rows; "
            f"restarts after a load: {acc['restarts']}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    env = os.environ.get

    r = sub.add_parser("run", help="the whole benchmark")
    r.add_argument("--targets", default=env("TARGETS", "direct,litellm,switchyard"))
    r.add_argument("--concurrency", default=env("CONCURRENCY", "64,256,1024"))
    r.add_argument("--modes", default=env("MODES", "plain,stream"))
    r.add_argument("--duration", type=float, default=float(env("DURATION", 20)))
    r.add_argument("--warmup", type=float, default=float(env("WARMUP", 2)))
    r.add_argument(
        "--timeout",
        type=float,
        default=float(env("TIMEOUT", 10)),
        help="client timeout per request",
    )
    r.add_argument(
        "--drain-max",
        type=float,
        default=float(env("DRAIN_MAX", 20)),
        help="after a load, wait at most this long for the target to go idle, else restart it",
    )
    r.add_argument("--delay", type=float, default=float(env("STANDIN_DELAY", 1.0)))
    r.add_argument("--chunks", type=int, default=int(env("STANDIN_CHUNKS", 20)))
    r.add_argument("--interval", type=float, default=float(env("STANDIN_INTERVAL", 0.05)))
    r.add_argument("--probe-interval", type=float, default=float(env("PROBE_INTERVAL", 0.1)))
    r.add_argument("--probe-timeout", type=float, default=float(env("PROBE_TIMEOUT", 10)))
    r.add_argument("--switchyard-dir", default=env("SWITCHYARD_DIR", str(ROOT)))
    r.add_argument(
        "--switchyard-cmd",
        default=env("SWITCHYARD_CMD", "scripts/run.sh"),
        help="shell command run in --switchyard-dir; must listen on $BIND_ADDRESS:$PORT",
    )
    r.add_argument(
        "--litellm-venv", default=env("LITELLM_VENV", "/tmp/switchyard-bench-litellm-venv")
    )
    r.add_argument("--litellm-workers", type=int, default=int(env("LITELLM_WORKERS", 2)))
    r.add_argument(
        "--start-timeout",
        type=float,
        default=float(env("START_TIMEOUT", 480)),
        help="seconds a server may take to answer after it is started (LiteLLM: minutes)",
    )
    r.add_argument("--port-base", type=int, default=int(env("PORT_BASE", 19080)))
    r.add_argument("--pidfile", default=env("BENCH_PIDFILE", ""))
    r.add_argument("--keep", action="store_true", help="keep the work directory (logs, db)")

    d = sub.add_parser("drive", help="the load generator alone")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--path", default="/v1/chat/completions")
    d.add_argument("--key", default="sk-bench")
    d.add_argument("--connections", type=int, default=64)
    d.add_argument("--duration", type=float, default=10)
    d.add_argument("--timeout", type=float, default=10)
    d.add_argument("--stream", action="store_true")

    p = sub.add_parser("probe", help="the /healthz prober alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/healthz")
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=10)

    args = ap.parse_args()
    if args.cmd == "run":
        return main_run(args)
    if args.cmd == "drive":
        print(json.dumps(asyncio.run(Load(args).run())))
        return 0
    print(json.dumps(asyncio.run(probe(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
