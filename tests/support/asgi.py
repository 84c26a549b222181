"""Calling an ASGI application in process: one HTTP request, its answer, its thread hops.

`served()` is config.asgi's stack as the server runs it (the serving handler behind the
pooled threads), built on the test settings; `request()` sends one request through it on
the running loop and collects the answer; `HopLog` records every sync call the request
hands to an executor (`loop.run_in_executor`, which asgiref's `sync_to_async` uses), with
the name of the function and whether it went to the shared pool of sync-view threads.
"""

import asyncio
import functools
import json
from dataclasses import dataclass, field

from config.serving.handler import ServingASGIHandler
from config.serving.threads import SyncViewThreads, _Lease, _PerCall

_served: list[SyncViewThreads] = []

# The model of the `provider` fixture's config (tests/serving/conftest.py), and a chat on it.
LOCAL_MODEL = "gemma-3-270m"
CHAT = {"model": LOCAL_MODEL, "messages": [{"role": "user", "content": "Say OK"}]}


def run(coroutine, timeout: float = 60):
    """Run `coroutine` on a fresh loop, then close that loop's provider connections."""
    from llm_providers.transport.asessions import aclose_sessions

    async def main():
        try:
            return await asyncio.wait_for(coroutine, timeout=timeout)
        finally:
            await aclose_sessions()

    return asyncio.run(main())


def served(size: int = 4) -> SyncViewThreads:
    app = SyncViewThreads(ServingASGIHandler(), size=size)
    _served.append(app)
    return app


def close_thread_connections() -> None:
    """Close the database connections kept by the pooled threads of every app `served()`
    built and by /healthz's own threads: left open, they stop PostgreSQL from dropping the
    test database at the end of the run."""
    from django.db import connections

    from llm_providers import health

    while _served:
        close_pool_connections(_served.pop().pool)
    health.monitor.stop()  # its thread closes its connections as it ends
    health._replays.run(connections.close_all).result(timeout=10)


def close_pool_connections(pool) -> None:
    """Close the database connections every thread of a StickyThreadPool keeps (a pool
    a test makes itself; `close_thread_connections` does it for the apps `served()` built)."""
    from django.db import connections

    leases = [pool.lease() for _ in range(pool.size)]  # every thread at once
    try:
        for future in [lease.submit(connections.close_all) for lease in leases]:
            future.result(timeout=10)
    finally:
        for lease in leases:
            lease.release()


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes
    cookies: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


def http_scope(method, path, *, body=b"", headers=()) -> dict:
    """The ASGI scope of one HTTP request to `path` (with its query) carrying `body`."""
    raw_headers = [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def client(body: bytes, then):
    """ASGI receive/send of a client that sends `body`, then the message `await then()`
    gives; `sent` collects what it was answered."""
    sent: list[dict] = []
    given = False

    async def receive():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    async def send(message):
        sent.append(message)

    return receive, send, sent


async def request(app, method, path, *, body=b"", headers=(), json_body=None) -> Answer:
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers = [*headers, ("content-type", "application/json")]
    scope = http_scope(method, path, body=body, headers=headers)
    answered = asyncio.Event()

    async def until_answered():
        await answered.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    receive, record, messages = client(body, then=until_answered)

    async def send(message):
        await record(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    start = messages[0]
    cookies = {}
    for name, value in start["headers"]:
        if name.lower() == b"set-cookie":
            cookie, _, _ = value.decode().partition(";")
            key, _, cookie_value = cookie.partition("=")
            cookies[key] = cookie_value
    return Answer(
        status=start["status"],
        headers={k.decode().lower(): v.decode() for k, v in start["headers"]},
        body=b"".join(m.get("body", b"") for m in messages[1:]),
        cookies=cookies,
    )


def _name(fn) -> tuple[str, str]:
    # asgiref hands the executor partial(thread_handler, loop, exc_info, context, func, child)
    # with child = partial(the sync function, *args): the name is the sync function's.
    if isinstance(fn, functools.partial) and fn.args:
        child = fn.args[-1]
        target = child.func if isinstance(child, functools.partial) else child
    else:
        target = fn
    return getattr(target, "__module__", "") or "", getattr(target, "__qualname__", repr(target))


@dataclass
class HopLog:
    app: SyncViewThreads
    hops: list[tuple[str, str, bool]] = field(default_factory=list)  # (module, name, pool?)

    def install(self, loop) -> None:
        original = loop.run_in_executor

        def run_in_executor(executor, fn, *args):
            on_pool = isinstance(executor, _Lease | _PerCall)
            self.hops.append((*_name(fn), on_pool))
            return original(executor, fn, *args)

        loop.run_in_executor = run_in_executor

    def pool_hops(self) -> list[tuple[str, str]]:
        """(module, function) of each call that went to the shared pool, in order."""
        return [(module, name) for module, name, on_pool in self.hops if on_pool]

    def clear(self) -> None:
        self.hops.clear()
