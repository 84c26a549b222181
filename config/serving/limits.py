"""Request-body limits that hold before Django sees a request (ASGI wrapper).

Under ASGI, Django reads the whole body before any view runs (into memory, then a temporary
file), whatever its size and however slowly it arrives. So the body is read here first,
bounded in size (`SERVER_MAX_BODY_BYTES`) and in time (`SERVER_BODY_TIMEOUT_SECONDS` for the
whole body), then replayed to Django. A request over either bound is answered at once, in
the documented error shape of its path, with `Connection: close`: the unread rest of its
body must never be taken for the next request on a kept-alive connection.

An HTTP/1 request without Content-Length or Transfer-Encoding has no body (RFC 9112, 6.3):
its empty body is not awaited at all. Awaiting it costs a turn of the event loop, and under
load a turn waits behind every open request's work (a GET /healthz spent a fifth of its
time there at 1,024 open calls); the empty message the server still holds is taken, unseen,
by the request's next receive (Django's disconnect listener).

A client that leaves before its answer (here, while its body arrives, or later in the
handler) gets its request ended by `end_for_a_client_that_left`: logged 499, not 500.
"""

import asyncio
import json
import time
from contextlib import suppress

V1_PREFIX = "/v1/"

# nginx's "client closed request", for a request whose client left before any answer.
CLIENT_CLOSED_REQUEST = 499


async def end_for_a_client_that_left(send) -> None:
    """End a request whose client left before its answer began.

    Nothing reaches anyone (the connection is gone), but the server's access log then says
    499, as nginx's does, instead of the 500 that granian logs for a request the
    application did not answer: a load's clients timing out are not server errors.
    """
    with suppress(OSError):  # ASGI lets a server raise on a closed connection
        await send({"type": "http.response.start", "status": CLIENT_CLOSED_REQUEST, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _error(path: str, status: int, code: str, message: str, details: dict) -> bytes:
    if path.startswith(V1_PREFIX) or path == V1_PREFIX.rstrip("/"):
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    else:
        body = {"error": {"code": code, "message": message, "details": details}}
    return json.dumps(body).encode()


async def _respond_and_close(
    send, path: str, status: int, code: str, message: str, details: dict
) -> None:
    body = _error(path, status, code, message, details)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Read each HTTP body within `max_bytes` and `timeout` seconds, then hand it on."""

    def __init__(self, app, *, max_bytes: int, timeout: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await self._too_large(send, path)
        if _has_no_body(scope):
            return await self.app(scope, _NoBody(receive), send)

        chunks = await self._read_body(receive, send, path)
        if chunks is None:  # answered already
            return None

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _read_body(self, receive, send, path: str) -> list[bytes] | None:
        """The body's chunks, or None once a body too large, too slow or left is answered."""
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    message = await receive()
            except TimeoutError:
                await _respond_and_close(
                    send,
                    path,
                    408,
                    "request_timeout",
                    f"The request body did not arrive within {self.timeout:g} s.",
                    {"timeout_seconds": self.timeout},
                )
                return None
            if message["type"] == "http.disconnect":  # before its request was complete
                await end_for_a_client_that_left(send)
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send, path)
                return None
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        return chunks

    async def _too_large(self, send, path: str):
        return await _respond_and_close(
            send,
            path,
            413,
            "request_too_large",
            f"The request body is larger than the {self.max_bytes} bytes allowed.",
            {"max_bytes": self.max_bytes},
        )


def _has_no_body(scope) -> bool:
    """HTTP/1 framing: neither Content-Length nor Transfer-Encoding."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        return False  # HTTP/2 and later carry a body without either header
    framing = (b"content-length", b"transfer-encoding")
    return not any(name.lower() in framing for name, _ in scope.get("headers", ()))


class _NoBody:
    """`receive` for a request without a body: its empty body at once, then the server's."""

    __slots__ = ("receive", "answered", "pending")

    def __init__(self, receive):
        self.receive = receive
        self.answered = False  # the empty body handed on
        self.pending = True  # the server's own (empty) http.request, not yet taken

    async def __call__(self):
        if not self.answered:
            self.answered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        message = await self.receive()
        if self.pending:
            self.pending = False
            if message["type"] == "http.request":
                message = await self.receive()
        return message


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
