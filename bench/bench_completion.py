"""How much LLMService.generate_completion adds over a bare pooled requests call.

Both arms call the same local, instant, OpenAI-shaped upstream (a separate process on
127.0.0.1), interleaved, after a warm-up. The service arm includes everything a real call
does: the config lookup (one SELECT, key decryption), building the request, the
connect-time-checked pooled session, retries bookkeeping, parsing, pricing and the usage
row INSERT. The config is the tenant's own (its base URL is the upstream, so the
connection is address-checked) for the `openai` provider, so pricing is included.
Reported: p50/p99 of each arm and the added time (service - bare).

    python bench/bench_completion.py                       # SQLite (a fresh file in /tmp)
    python bench/bench_completion.py --database-url postgres://user@127.0.0.1:5432/db
    python bench/bench_completion.py -n 5000 --json

Budget (issue 3): <= 1.5 ms added at p50, <= 5 ms at p99.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1764300000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A short blueprint."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
).encode()


class InstantUpstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every reply

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.send_header("x-request-id", "req_bench")
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args):
        pass


def serve(port_file: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), InstantUpstream)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def start_upstream() -> tuple[subprocess.Popen, int]:
    port_file = tempfile.mktemp(prefix="bench-upstream-")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
    for _ in range(200):
        if os.path.exists(port_file) and Path(port_file).read_text():
            port = int(Path(port_file).read_text())
            os.unlink(port_file)
            return proc, port
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("the upstream did not start")


def setup_django(database_url: str | None) -> str:
    from cryptography.fernet import Fernet

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("FIELD_ENCRYPTION_KEY", Fernet.generate_key().decode())
    os.environ["LLM_VALIDATE_ON_STARTUP"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        path = Path(tempfile.mkdtemp(prefix="bench-db-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("LLM_BASE_URL_ALLOWLIST", "127.0.0.0/8")  # the upstream is local

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    return connection.vendor


def percentile(values, q):
    ordered = sorted(values)
    index = min(int(round(q / 100 * (len(ordered) - 1))), len(ordered) - 1)
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument(
        "--provider",
        default="openai",
        choices=["openai", "local"],
        help="openai (default) includes pricing from genai-prices; local is free",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    vendor = setup_django(args.database_url)
    import requests

    from llm_providers.models import UsageLog
    from llm_providers.services import LLMService, llm_provider_service
    from tenants.models import Tenant

    proc, port = start_upstream()
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        Tenant.objects.update_or_create(id="bench_tenant", defaults={"name": "bench"})
        UsageLog.objects.filter(tenant_id="bench_tenant").delete()
        llm_provider_service.save_provider_config(
            tenant_id="bench_tenant",
            provider=args.provider,
            api_key="sk-bench-fake-key-0001",
            default_model="gpt-4o-mini",
            base_url=base_url,
        )
        bare_session = requests.Session()
        url = f"{base_url}/chat/completions"
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Generate system blueprint"}],
            "max_tokens": 100,
        }
        headers = {"Authorization": "Bearer sk-bench-fake-key-0001"}

        def bare():
            response = bare_session.post(url, json=body, headers=headers, timeout=(5, 60))
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        def service():
            result = LLMService("bench_tenant").generate_completion(
                "Generate system blueprint", max_tokens=100
            )
            assert result.success, result.error
            return result.content

        for _ in range(args.warmup):
            bare()
            service()
        bare_times, service_times = [], []
        clock = time.perf_counter
        for i in range(args.iterations):
            # Alternate the order so neither arm always runs on a warmer cache.
            order = (bare, service) if i % 2 else (service, bare)
            for fn in order:
                t0 = clock()
                fn()
                elapsed = (clock() - t0) * 1000
                (bare_times if fn is bare else service_times).append(elapsed)
        rows = UsageLog.objects.filter(tenant_id="bench_tenant").count()
    finally:
        proc.terminate()
        proc.wait(5)

    report = {
        "database": vendor,
        "provider": args.provider,
        "iterations": args.iterations,
        "usage_rows_written": rows,
        "bare_p50_ms": percentile(bare_times, 50),
        "bare_p99_ms": percentile(bare_times, 99),
        "service_p50_ms": percentile(service_times, 50),
        "service_p99_ms": percentile(service_times, 99),
        "added_p50_ms": percentile(service_times, 50) - percentile(bare_times, 50),
        "added_p99_ms": percentile(service_times, 99) - percentile(bare_times, 99),
        "added_mean_ms": statistics.fmean(service_times) - statistics.fmean(bare_times),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"database {vendor}, provider {args.provider}, {args.iterations} calls per arm, "
        f"{rows} usage rows written"
    )
    print(f"{'':>14} {'p50 ms':>9} {'p99 ms':>9}")
    print(f"{'bare requests':>14} {report['bare_p50_ms']:9.3f} {report['bare_p99_ms']:9.3f}")
    print(f"{'LLMService':>14} {report['service_p50_ms']:9.3f} {report['service_p99_ms']:9.3f}")
    print(f"{'added':>14} {report['added_p50_ms']:9.3f} {report['added_p99_ms']:9.3f}")
    ok = report["added_p50_ms"] <= 1.5 and report["added_p99_ms"] <= 5
    print("within budget (<= 1.5 ms p50, <= 5 ms p99)" if ok else "OVER BUDGET")


if __name__ == "__main__":
    main()
