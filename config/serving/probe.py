"""The probe port: `GET /healthz` answered beside the event loop, for orchestrators' probes.

On the served port a probe is one more request on the worker's event loop: while the loop
is full (1,024 open streams on two cores) it waits its turn behind every open call's work,
and asyncio gives no request priority (bench/README.md, issue 9: p99 0.5-1 s). A liveness
probe that times out there restarts a worker that is busy, not broken. With
`SERVER_HEALTH_PORT` set, each web process also listens on that port (SO_REUSEPORT: the
processes share it, the kernel spreads the probes) from a thread of its own, with its own
small asyncio loop, so a probe waits for neither the serving loop nor its queue.

It answers what `/healthz` answers (the same `HealthMonitor` result: database, validation,
breakers, usage writes) plus `checks.loop`: how late this process's serving loop is, from a
heartbeat the loop itself re-arms every LoopWatch.INTERVAL. A loop later than
`SERVER_HEALTH_STALL_SECONDS` (blocked, not just busy) is a 503 `fail`, so the probe still
says when the worker cannot serve. Before the first request the loop has no heartbeat yet
(`lag_ms: null`): nothing has run on it that could block it.

HTTP/1.x, one request per connection (`Connection: close`), GET and HEAD of `/healthz`
only; a request's head must arrive within READ_TIMEOUT seconds and fit in MAX_HEAD_BYTES,
at most MAX_CONNECTIONS at once (more are closed at once): a trickling client holds one
socket for two seconds, never the thread.
"""

import asyncio
import json
import logging
import os
import socket
import threading
import time
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from llm_providers.health import monitor, report_off_the_loop
from tenants.api.exceptions import error_body

logger = logging.getLogger(__name__)

READ_TIMEOUT = 2.0
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 256


class LoopWatch:
    """A heartbeat on the serving loop; `lag()` (from any thread) is how late it is."""

    INTERVAL = 0.25

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._last: float | None = None

    @property
    def watching(self) -> bool:
        return self._last is not None

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the heartbeat on `loop` (called on it, once: the process's serving loop)."""
        if not self.watching:
            self._beat(loop)

    def _beat(self, loop) -> None:
        self._last = self._clock()
        loop.call_later(self.INTERVAL, self._beat, loop)

    def lag(self) -> float | None:
        """Seconds the heartbeat is overdue (None before the first): 0 while the loop turns
        at least every INTERVAL, the length of a stall while one lasts."""
        last = self._last
        if last is None:
            return None
        return max(0.0, self._clock() - last - self.INTERVAL)


class Watched:
    """The ASGI application, starting the loop's heartbeat at its first request."""

    def __init__(self, app, watch: LoopWatch):
        self.app = app
        self._watch = watch

    def __call__(self, scope, receive, send):
        if not self._watch.watching:
            self._watch.watch(asyncio.get_running_loop())
        return self.app(scope, receive, send)


def loop_check(watch: LoopWatch, stall_seconds: float) -> dict:
    lag = watch.lag()
    stalled = lag is not None and lag > stall_seconds
    return {
        "status": "fail" if stalled else "ok",
        "lag_ms": None if lag is None else round(lag * 1000),
        "pid": os.getpid(),
    }


class ProbeServer:
    """The probe port's listener: its socket bound by `start()` (an error there names the
    setting), then served on a daemon thread with its own asyncio loop.

    `monitor` is /healthz's `HealthMonitor`: its result as the served /healthz answers it
    (`report_off_the_loop`). A loop later than SERVER_HEALTH_STALL_SECONDS is a 503 `fail`
    without asking.
    """

    def __init__(self, address, port, *, watch, monitor):
        self.address, self.port = address, port
        self._watch, self._monitor = watch, monitor
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._open = 0

    def start(self) -> "ProbeServer":
        self._sock = _listen(self.address, self.port)
        self.port = self._sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="probe-port", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._handle, sock=self._sock, limit=MAX_HEAD_BYTES)
            )
            ready.set()
            loop.run_forever()
            server.close()
        except Exception:
            logger.exception("probe port: the listener stopped")
        finally:
            ready.set()
            loop.close()

    async def _handle(self, reader, writer) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._open += 1
        try:
            await self._respond(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client left or trickled: nothing to answer
        except Exception:
            logger.exception("probe port: a probe failed")
        finally:
            self._open -= 1
            writer.close()

    async def _respond(self, reader, writer) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return await _refuse(writer, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "bad_request")
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return await _refuse(writer, HTTPStatus.BAD_REQUEST, "bad_request")
        method, target = parts[0], parts[1]
        if target.split(b"?", 1)[0] != b"/healthz":
            return await _refuse(writer, HTTPStatus.NOT_FOUND, "not_found")
        if method not in (b"GET", b"HEAD"):
            return await _refuse(writer, HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed")
        status, body = await self.report()
        await _write(writer, HTTPStatus(status), body, head_only=method == b"HEAD")

    async def report(self) -> tuple[int, dict]:
        loop = loop_check(self._watch, settings.SERVER_HEALTH_STALL_SECONDS)
        if loop["status"] == "fail":
            return 503, {"status": "fail", "checks": {"loop": loop}}
        status, body = await report_off_the_loop(self._monitor)
        return status, {**body, "checks": {**body["checks"], "loop": loop}}


async def _refuse(writer, status: HTTPStatus, code: str) -> None:
    """A 4xx in the API's error shape (only /healthz is served here)."""
    message = f"{status.phrase}: the probe port answers GET and HEAD of /healthz only."
    await _write(writer, status, error_body(code, message))


async def _write(writer, status: HTTPStatus, body, *, head_only=False) -> None:
    data = json.dumps(body).encode()
    head = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
    ]
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        head.append("Allow: GET, HEAD")
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + (b"" if head_only else data))
    await writer.drain()


def _listen(address: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Every web process binds the port: the kernel spreads the connections.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SERVER_HEALTH_PORT: cannot listen on {address}:{port} "
            f"(SERVER_HEALTH_ADDRESS, SERVER_HEALTH_PORT): {exc.strerror or exc}."
        ) from None
    sock.setblocking(False)
    return sock


def check_port(port) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ImproperlyConfigured(
            f"SERVER_HEALTH_PORT must be 0 (no probe port) or a port from 1 to 65535 "
            f"(got {port!r})."
        )


def serve(application):
    """`application` as served: with SERVER_HEALTH_PORT set, the probe port listening and
    the serving loop's heartbeat started at the first request; else `application` itself."""
    check_port(settings.SERVER_HEALTH_PORT)
    if not settings.SERVER_HEALTH_PORT:
        return application
    watch = LoopWatch()
    ProbeServer(
        settings.SERVER_HEALTH_ADDRESS, settings.SERVER_HEALTH_PORT, watch=watch, monitor=monitor
    ).start()
    return Watched(application, watch)
