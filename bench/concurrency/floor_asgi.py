"""The floor of any Python gateway on Switchyard's stack: granian + aiohttp, nothing else.

An ASGI app that passes a POST body to the provider stand-in with aiohttp (one session,
no pool ceiling, as llm_providers/transport/asessions.py) and returns the answer as it
came: no Django, no authentication, no usage row, no stream relay. Served under the same
granian flags as scripts/serve-web.sh, in place of Switchyard:

    SWITCHYARD_CMD='PYTHONPATH=bench/concurrency .venv/bin/granian floor_asgi:app \
      --interface asginl --http 1 --no-ws --loop uvloop --host 127.0.0.1 --port $PORT \
      --workers 2 --backpressure 1024 --no-access-log' \
      TARGETS=direct,switchyard CONCURRENCY=1024 MODES=plain DURATION=8 bench/concurrency/run.sh

The "switchyard" row is then this floor (its usage-row column says "no": it writes none).
Its server CPU per call (bench/results/concurrency-*.json) against Switchyard's is what
Django, the engine and the row cost on top of the server and the HTTP client.
"""

import os

import aiohttp

# bench.py's stand-in port for the "switchyard" target: PORT_BASE + 3.
UPSTREAM = os.environ.get(
    "FLOOR_UPSTREAM",
    f"http://127.0.0.1:{int(os.environ.get('PORT_BASE', 19080)) + 3}/v1/chat/completions",
)
_session: aiohttp.ClientSession | None = None


async def app(scope, receive, send):
    global _session
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/healthz":
        status, answer = 200, b'{"status":"ok"}'
    else:
        if _session is None:
            _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        headers = {"Content-Type": "application/json", "Authorization": "Bearer floor"}
        async with _session.post(UPSTREAM, data=body, headers=headers) as response:
            status, answer = response.status, await response.read()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})
