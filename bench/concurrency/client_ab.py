"""A/B of the async HTTP clients for provider calls: httpx (httpx2) against aiohttp.

    .venv/bin/python bench/concurrency/client_ab.py [--concurrency 1024] [--rounds 3]

Starts the provider stand-in (standin.py) on one port, then for each client and mode
(plain: a 1 s answer; stream: 20 SSE chunks 50 ms apart) opens `--concurrency` requests
at once, `--rounds` times over one pooled client (keep-alive, a pool as large as the
concurrency), and reports the wall time of each round, the process's CPU seconds and the
errors. The stand-in's own timing is the floor: a round cannot take less than ≈ 1 s. The
client whose CPU per request is lowest leaves the most of the machine to the relay.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _httpx(url, n, rounds, stream):
    import httpx2 as httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one():
            body = {**BODY, "stream": stream}
            if not stream:
                r = await client.post(url, json=body)
                r.raise_for_status()
                json.loads(r.content)
                return
            async with client.stream("POST", url, json=body) as r:
                r.raise_for_status()
                async for _ in r.aiter_bytes():
                    pass

        return await _rounds(one, n, rounds)


async def _aiohttp(url, n, rounds, stream):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=n, limit_per_host=n)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one():
            body = {**BODY, "stream": stream}
            async with client.post(url, json=body) as r:
                r.raise_for_status()
                if not stream:
                    json.loads(await r.read())
                    return
                async for _ in r.content.iter_any():
                    pass

        return await _rounds(one, n, rounds)


async def _rounds(one, n, rounds):
    walls, errors = [], 0
    cpu0 = _cpu()
    for _ in range(rounds):
        t0 = time.monotonic()
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        walls.append(time.monotonic() - t0)
        errors += sum(1 for r in results if isinstance(r, BaseException))
    return walls, _cpu() - cpu0, errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(20000, hard), hard))
    port = _free_port()
    standin = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "standin.py"), "--ports", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        n, rounds = args.concurrency, args.rounds
        print(f"{n} concurrent requests, {rounds} rounds; load: {os.getloadavg()}")
        for mode in ("plain", "stream"):
            for name, fn in (("httpx", _httpx), ("aiohttp", _aiohttp)):
                walls, cpu, errors = runner(fn(url, n, rounds, mode == "stream"))
                per = cpu / (n * rounds) * 1e6
                print(
                    f"{mode:6} {name:8} rounds {' '.join(f'{w:.2f}s' for w in walls)}"
                    f"  cpu {cpu:.2f}s ({per:.0f} µs/request)  errors {errors}"
                )
    finally:
        standin.terminate()
        standin.wait()


if __name__ == "__main__":
    main()
