"""CPU per provider call of the HTTP client variants, interleaved in one process.

    .venv/bin/python bench/gateway/http_client_ab.py [-n 2000] [--rounds 5]

Each round runs every arm for -n POSTs of the /v1 benchmark's body to a local nginx
answering a fixed chat completion (keep-alive), in turn, so background load hits all arms
alike; reported is each arm's median over the rounds of `time.process_time` per call.

- requests.Session.post: a pooled session's ordinary call (what the code did originally);
- http.send (full prepare + Session.send): the code before this change, as far as the
  HTTP client goes (`_prepare_fully` + `Session.send`);
- http.send: `llm_providers.transport.send.send` as it is now;
- urllib3 alone: `PoolManager.request` with the JSON body (a floor, not used: the tests
  intercept at `HTTPAdapter.send`).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

from bench.gateway.bench import NGINX_CONF, NGINX_SERVER, UPSTREAM_BODY  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say ok"}],
    "max_tokens": 5,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--port", type=int, default=18094)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="switchyard-httpab-"))
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
        return run(args)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)


def run(args) -> int:
    import django

    django.setup()
    import requests
    import urllib3

    from llm_providers.errors import ProviderError
    from llm_providers.providers.base import HttpRequestSpec
    from llm_providers.transport import prepare, send, sessions

    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    headers = {"Authorization": "Bearer sk-bench-fake-key-0001", "Accept": "application/json"}
    spec = HttpRequestSpec("POST", url, headers, json=BODY)

    def map_error(status, body, headers):
        return ProviderError("bad_response", "unexpected")

    plain = requests.Session()

    def requests_post():
        r = plain.post(url, json=BODY, headers=headers)
        r.content  # noqa: B018

    session = sessions.get_session(url, check=True)
    old_session = requests.Session()
    old_session.trust_env = False
    old_adapter = sessions.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    old_session.mount("http://", old_adapter)

    def old_send():
        r = old_session.send(
            prepare.prepare_fully(old_session, spec, headers),
            timeout=(5, 60),
            stream=True,
            allow_redirects=False,
        )
        b"".join(r.iter_content(65536))

    def new_send():
        result = send.send(spec, map_error=map_error, check=True, max_retries=0)
        assert result.ok, result.error

    pool = urllib3.PoolManager(maxsize=32)

    def urllib3_alone():
        r = pool.request("POST", url, json=BODY, headers=headers)
        r.data  # noqa: B018

    arms = {
        "requests.Session.post": requests_post,
        "full prepare + Session.send": old_send,
        "http.send (now)": new_send,
        "urllib3 alone": urllib3_alone,
    }
    assert session is not None
    for fn in arms.values():
        for _ in range(200):
            fn()
    per_arm: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, fn in arms.items():
            c0 = time.process_time()
            for _ in range(args.n):
                fn()
            per_arm[name].append((time.process_time() - c0) / args.n * 1e6)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; {args.rounds} rounds × {args.n} calls")
    for name, values in per_arm.items():
        print(
            f"{name:<30} median {statistics.median(values):6.0f} µs CPU/call"
            f"  (rounds: {', '.join(f'{v:.0f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
