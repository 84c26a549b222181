"""Driver for bench/gateway/run.sh: upstream vs LiteLLM vs Switchyard under wrk.

Everything listens on 127.0.0.1 and every load run is bounded by --duration. The three
targets are measured in interleaved rounds (upstream, LiteLLM, Switchyard, then again), so
that background load on a shared machine hits all of them alike; the figures are the
medians over the rounds.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
README = ROOT / "bench" / "README.md"
RESULTS = ROOT / "bench" / "results"
SECTION = "## OpenAI-compatible gateway"

UPSTREAM_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1764300000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    },
    separators=(",", ":"),
)

# One nginx port per client, so that each client's upstream calls are counted apart.
NGINX_SERVER = """
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    access_log {log} st buffer=64k flush=1s;
    location / {{
      default_type application/json;
      return 200 '{body}';
    }}
  }}"""

NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  client_body_temp_path {dir}/nginx-body;
  log_format st '$request_method $status';
{servers}
}}
"""

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


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Processes:
    """Child processes started by this run; all stopped (by pid) on exit."""

    def __init__(self):
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name, cmd, *, env=None, logfile: Path) -> subprocess.Popen:
        out = open(logfile, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, sig=signal.SIGTERM, timeout=15) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)


def wait_http(url: str, *, timeout: float, headers=None, proc=None, name="") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{name} exited early (code {proc.returncode}); see its log")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: good enough to know it is up
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name or url} did not come up within {timeout:.0f}s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    res = {"non2xx": 0, "socket_errors": 0}
    for line in out.splitlines():
        line = line.strip()
        if m := re.match(r"(50|90|99)%\s+(\S+)", line):
            res[f"p{m.group(1)}_ms"] = _ms(m.group(2))
        elif m := re.match(r"(\d+) requests in ([\d.]+)(\w+)", line):
            res["requests"] = int(m.group(1))
        elif m := re.match(r"Requests/sec:\s+([\d.]+)", line):
            res["rps"] = float(m.group(1))
        elif m := re.match(r"Non-2xx or 3xx responses:\s+(\d+)", line):
            res["non2xx"] = int(m.group(1))
        elif m := re.match(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line
        ):
            res["socket_errors"] = sum(int(x) for x in m.groups())
    if "rps" not in res or "p50_ms" not in res:
        raise ValueError(f"could not parse wrk output:\n{out}")
    return res


def run_wrk(url: str, *, connections: int, duration: float, key: str) -> dict:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(HERE / "post.lua"),
        url,
    ]
    env = {**os.environ, "WRK_KEY": key}
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse_wrk(out)


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds of every live process in a process group (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def count_status(logfile: Path) -> dict:
    """`{status: count}` of the POSTs in an access log (the readiness probe is a GET)."""
    counts: dict[str, int] = {}
    if logfile.exists():
        for line in logfile.read_text().splitlines():
            method, _, status = line.partition(" ")
            if method == "POST":
                counts[status] = counts.get(status, 0) + 1
    return counts


def server_cmd(server: str, port: int, py: str) -> list[str]:
    """`serve` (granian, as `make serve` serves: scripts/serve-web.sh with WEB_CONCURRENCY
    worker processes, PORT and BIND_ADDRESS from the environment), or, for comparisons
    with the earlier serving models (gunicorn installed by hand), `sync:N`, `gthread:NxT`
    or `uvicorn:N` → a gunicorn command line."""
    kind, _, shape = server.partition(":")
    if kind == "serve":
        return ["bash", str(ROOT / "scripts" / "serve-web.sh")]
    base = [
        py,
        "-m",
        "gunicorn",
        "config.wsgi",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--backlog",
        "2048",
        "--keep-alive",
        "75",
    ]
    if kind == "sync":
        return base + ["-k", "sync", "-w", shape or "2"]
    if kind == "gthread":
        workers, _, threads = (shape or "2x4").partition("x")
        return base + ["-k", "gthread", "-w", workers, "--threads", threads or "4"]
    if kind == "uvicorn":
        base[3] = "config.asgi:application"
        return base + ["-k", "uvicorn.workers.UvicornWorker", "-w", shape or "2"]
    raise SystemExit(f"unknown --server {server!r}")


def machine_facts() -> dict:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in load],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", default="upstream,litellm,switchyard")
    ap.add_argument("--connections", default="1,16")
    ap.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", 10)))
    ap.add_argument("--warmup", type=float, default=float(os.environ.get("WARMUP", 2)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument(
        "--server",
        default=os.environ.get("SWITCHYARD_SERVER", "serve"),
        help="serve (default: granian as scripts/run.sh serves it), or gunicorn's sync:N, "
        "gthread:NxT, uvicorn:N (gunicorn is no longer a dependency: pip install it first)",
    )
    ap.add_argument(
        "--path",
        default="/v1/chat/completions",
        help="Switchyard path under load (the floor views: /floor/auth-insert)",
    )
    ap.add_argument("--provider", default="openai", help="provider of the tenant's config")
    ap.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="default: a fresh SQLite file in the work directory",
    )
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("PORT_BASE", 18080)))
    args = ap.parse_args()

    targets = [t for t in args.targets.split(",") if t]
    conns = [int(c) for c in args.connections.split(",")]
    py = os.environ.get("PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    litellm_bin = Path(os.environ.get("LITELLM_VENV", "/tmp/switchyard-bench-litellm-venv"))
    work = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    pb = args.port_base
    ports = {
        "upstream": pb + 1,
        "upstream_litellm": pb + 2,
        "upstream_switchyard": pb + 3,
        "litellm": pb + 20,
        "switchyard": pb + 30,
    }
    procs = Processes()
    log(f"work directory {work}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        # -- upstream: nginx answering a fixed chat completion ---------------------------
        servers = "".join(
            NGINX_SERVER.format(
                port=ports[name], log=work / f"access-{name}.log", body=UPSTREAM_BODY
            )
            for name in ("upstream", "upstream_litellm", "upstream_switchyard")
        )
        (work / "nginx-body").mkdir()
        (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, servers=servers))
        nginx = procs.start(
            "nginx",
            ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
            logfile=work / "nginx.out",
        )
        for name in ("upstream", "upstream_litellm", "upstream_switchyard"):
            wait_http(f"http://127.0.0.1:{ports[name]}/", timeout=10, proc=nginx, name="nginx")

        keys = {"upstream": "sk-bench-fake-key-0001"}
        pgids = {"upstream": nginx.pid}
        urls = {"upstream": f"http://127.0.0.1:{ports['upstream']}/v1/chat/completions"}

        # -- LiteLLM's proxy: one worker, no database ------------------------------------
        if "litellm" in targets:
            master = "sk-bench-master-" + secrets.token_hex(4)
            (work / "litellm.yaml").write_text(
                LITELLM_CONF.format(port=ports["upstream_litellm"], master_key=master)
            )
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            env.update(
                LITELLM_LOCAL_MODEL_COST_MAP="True",
                LITELLM_LOG="ERROR",
                LITELLM_TELEMETRY="False",
                DISABLE_SCHEMA_UPDATE="True",
            )
            lite = procs.start(
                "litellm",
                [
                    str(litellm_bin / "bin" / "litellm"),
                    "--config",
                    str(work / "litellm.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["litellm"]),
                    "--num_workers",
                    "1",
                ],
                env=env,
                logfile=work / "litellm.log",
            )
            wait_http(
                f"http://127.0.0.1:{ports['litellm']}/health/liveliness",
                timeout=180,
                proc=lite,
                name="litellm",
            )
            keys["litellm"] = master
            pgids["litellm"] = lite.pid
            urls["litellm"] = f"http://127.0.0.1:{ports['litellm']}/v1/chat/completions"

        # -- Switchyard: migrated database, tenant, key, active config -------------------
        if "switchyard" in targets:
            from cryptography.fernet import Fernet

            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "bench.gateway.settings",
                "SECRET_KEY": "bench-only-" + secrets.token_hex(24),
                "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "DATABASE_URL": args.database_url or f"sqlite:///{work / 'switchyard.sqlite3'}",
                "LLM_VALIDATE_ON_STARTUP": "false",
                "SECURE_SSL_REDIRECT": "false",
                "DEBUG": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LOG_LEVEL": "WARNING",
                "LLM_MAX_RETRIES": "0",
                "LLM_BASE_URL_ALLOWLIST": "127.0.0.0/8",  # the fake upstream is local
                # One tenant is the whole load: the per-process default cap (8 open calls)
                # would measure itself at 16 connections.
                "LLM_DEFAULT_MAX_CONCURRENT": "0",
                "PYTHONPATH": str(ROOT),
                # scripts/serve-web.sh (--server serve)
                "PORT": str(ports["switchyard"]),
                "BIND_ADDRESS": "127.0.0.1",
                "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus"),
            }
            subprocess.run([py, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
            base = f"http://127.0.0.1:{ports['upstream_switchyard']}/v1"
            out = subprocess.run(
                [py, "-m", "bench.gateway.seed", "setup", args.provider, base],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            keys["switchyard"] = out.stdout.strip().splitlines()[-1]
            sw = procs.start(
                "switchyard",
                server_cmd(args.server, ports["switchyard"], py),
                env=env,
                logfile=work / "switchyard.log",
            )
            wait_http(
                f"http://127.0.0.1:{ports['switchyard']}/v1/models",
                timeout=60,
                proc=sw,
                name="switchyard",
            )
            pgids["switchyard"] = sw.pid
            urls["switchyard"] = f"http://127.0.0.1:{ports['switchyard']}{args.path}"

        facts_before = machine_facts()
        runs: dict[str, dict[int, list[dict]]] = {t: {c: [] for c in conns} for t in targets}
        wrk_2xx = {t: 0 for t in targets}
        wrk_non2xx = {t: 0 for t in targets}
        for rnd in range(args.rounds):
            for c in conns:
                for t in targets:
                    if args.warmup > 0:
                        w = run_wrk(urls[t], connections=c, duration=args.warmup, key=keys[t])
                        wrk_2xx[t] += w["requests"] - w["non2xx"]
                        wrk_non2xx[t] += w["non2xx"]
                    cpu0 = group_cpu_seconds(pgids[t]) if t in pgids else None
                    r = run_wrk(urls[t], connections=c, duration=args.duration, key=keys[t])
                    if cpu0 is not None and r["requests"]:
                        # CPU per request is what the server would cost on an idle machine;
                        # unlike req/s it barely moves with the shared machine's load.
                        cpu = group_cpu_seconds(pgids[t]) - cpu0
                        r["cpu_ms_per_req"] = cpu * 1000 / r["requests"]
                    wrk_2xx[t] += r["requests"] - r["non2xx"]
                    wrk_non2xx[t] += r["non2xx"]
                    runs[t][c].append(r)
                    log(
                        f"round {rnd + 1} {t:<10} c={c:<3} {r['rps']:8.1f} req/s  "
                        f"cpu/req {r.get('cpu_ms_per_req', 0):.3f} ms  "
                        f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
                        f"non-2xx {r['non2xx']}  socket errors {r['socket_errors']}"
                    )
        facts_after = machine_facts()

        # -- accounting check: one usage row per answered request ------------------------
        check = None
        if "switchyard" in targets:
            # A graceful stop lets the requests still in flight when wrk stopped finish
            # (and write their rows) before the rows are counted.
            procs.stop(sw, signal.SIGTERM, timeout=30)
            out = subprocess.run(
                [py, "-m", "bench.gateway.seed", "count"],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            rows = json.loads(out.stdout)
            procs.stop(nginx, signal.SIGQUIT)  # graceful: flushes the buffered access logs
            upstream_ok = count_status(work / "access-upstream_switchyard.log").get("200", 0)
            check = {
                "usage_rows_success": rows["success"],
                "usage_rows_failed": rows["failed"],
                "usage_rows_client_left": rows.get("client_left", 0),
                "usage_endpoints": rows["endpoints"],
                "upstream_answered": upstream_ok,
                "wrk_2xx": wrk_2xx["switchyard"],
                "wrk_non2xx": wrk_non2xx["switchyard"],
                # wrk does not count the replies still in flight when its time is up, so
                # the server may have answered up to one more request per connection per run.
                "in_flight_allowance": sum(conns) * args.rounds * (2 if args.warmup else 1),
            }
            # Each upstream answer has a row: a success, or (a call cut by the client
            # leaving as wrk stops, under ASGI) a failed row that says the client left.
            # A client-left row whose call never reached the upstream counts too: >=, and
            # never more than one such per connection per run.
            answered_rows = rows["success"] + rows.get("client_left", 0)
            check["rows_equal_upstream_answers"] = (
                0 <= answered_rows - upstream_ok <= check["in_flight_allowance"]
                and rows["success"] <= upstream_ok
            )
            check["rows_match_wrk"] = (
                0 <= rows["success"] - wrk_2xx["switchyard"] <= check["in_flight_allowance"]
            )
            log(f"accounting: {json.dumps(check)}")
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    summary = summarise(runs, conns)
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "server": args.server,
            "path": args.path,
            "provider": args.provider,
            "database": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
        },
        "machine_before": facts_before,
        "machine_after": facts_after,
        "summary": summary,
        "accounting": check,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"gateway-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(render(result))
    if not args.no_readme and {"upstream", "litellm", "switchyard"} <= set(targets):
        write_readme(render(result))
        log(f"wrote {README.relative_to(ROOT)}")
    ok = check is None or (check["rows_equal_upstream_answers"] and check["rows_match_wrk"])
    return 0 if ok else 1


def summarise(runs, conns) -> dict:
    out = {}
    for t, per_c in runs.items():
        out[t] = {}
        for c in conns:
            rs = per_c[c]
            out[t][c] = {
                "rps": statistics.median(r["rps"] for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                "non2xx": sum(r["non2xx"] for r in rs),
                "socket_errors": sum(r["socket_errors"] for r in rs),
            }
            if all("cpu_ms_per_req" in r for r in rs):
                out[t][c]["cpu_ms_per_req"] = statistics.median(r["cpu_ms_per_req"] for r in rs)
    return out


def render(result: dict) -> str:
    s, st, runs = result["summary"], result["settings"], result["runs"]
    conns = sorted({c for per in s.values() for c in per})
    lines = [
        SECTION,
        "",
        f"Measured {result['when']} by `bash bench/gateway/run.sh` "
        f"({st['rounds']} interleaved rounds of {st['duration_s']:g} s per target and "
        f"connection count, after {st['warmup_s']:g} s warm-up; wrk, 1 thread; medians over "
        f"the rounds). Switchyard: `{st['server']}`, {st['database']}, "
        f"`{st['provider']}` config, `POST {st['path']}`. Machine: "
        f"{result['machine_before']['cpus']} cores, load average "
        f"{result['machine_before']['loadavg'][0]} before and "
        f"{result['machine_after']['loadavg'][0]} after (the machine is shared).",
        "",
        "| target | conns | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in s:
        for c in conns:
            r = s[t][c]
            cpu = f"{r['cpu_ms_per_req']:.3f}" if "cpu_ms_per_req" in r else "-"
            lines.append(
                f"| {t} | {c} | {r['rps']:.0f} | {r['p50_ms']:.3f} | "
                f"{r['p99_ms']:.3f} | {r['non2xx']} | {cpu} |"
            )
    lines.append("")
    if "switchyard" in s and "litellm" in s:
        hi = max(conns)
        ratio = s["switchyard"][hi]["rps"] / s["litellm"][hi]["rps"]
        # Each round ran both under the same background load: its own ratio is the fairer
        # figure when that load changed between rounds.
        per_round = [
            sw["rps"] / lite["rps"]
            for sw, lite in zip(runs["switchyard"][hi], runs["litellm"][hi], strict=True)
        ]
        lines.append(
            f"- Throughput at {hi} connections: Switchyard / LiteLLM = "
            f"**{statistics.median(per_round):.1f}×** as the median of the per-round ratios "
            f"({', '.join(f'{r:.1f}×' for r in per_round)}); {ratio:.1f}× as the ratio of the "
            f"medians (target ≥ 10×)."
        )
        cpu_sw = s["switchyard"][hi].get("cpu_ms_per_req")
        cpu_lite = s["litellm"][hi].get("cpu_ms_per_req")
        if cpu_sw and cpu_lite:
            lines.append(
                f"- Server CPU per request at {hi} connections: LiteLLM {cpu_lite:.2f} ms, "
                f"Switchyard {cpu_sw:.2f} ms ({cpu_lite / cpu_sw:.1f}× less)."
            )
    if "switchyard" in s and "upstream" in s:
        lo = min(conns)
        added = s["switchyard"][lo]["p50_ms"] - s["upstream"][lo]["p50_ms"]
        lines.append(
            f"- Median added over the upstream at {lo} connection: "
            f"**{added:.3f} ms** (target ≤ 2 ms)."
        )
    if "switchyard" in s and "litellm" in s:
        lo = min(conns)
        added = s["litellm"][lo]["p50_ms"] - s["upstream"][lo]["p50_ms"]
        lines.append(f"- LiteLLM's median added at {lo} connection: {added:.3f} ms.")
    acc = result.get("accounting")
    if acc:
        lines.append(
            f"- Accounting: {acc['usage_rows_success']} successful usage rows "
            f"and {acc.get('usage_rows_client_left', 0)} of calls whose client left "
            f"(`endpoint` {', '.join(acc['usage_endpoints']) or '-'}) for "
            f"{acc['upstream_answered']} upstream answers "
            f"({'each has its row' if acc['rows_equal_upstream_answers'] else 'ROWS MISSING'}); "
            "wrk counted "
            f"{acc['wrk_2xx']} 2xx answers (it misses at most one in-flight reply per "
            f"connection per run: {'consistent' if acc['rows_match_wrk'] else 'INCONSISTENT'}"
            f"), {acc['wrk_non2xx']} non-2xx, {acc['usage_rows_failed']} failed rows."
        )
    return "\n".join(lines) + "\n"


def write_readme(section: str) -> None:
    """Replace the generated block of the section, keeping any hand-written notes after it."""
    begin, end = "<!-- gateway-bench:begin -->", "<!-- gateway-bench:end -->"
    block = f"{begin}\n{section}{end}"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
