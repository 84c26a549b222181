"""BodyLimits (config/serving/limits.py) in process: what the app behind it receives.

A request with a body is read whole before the app starts and replayed to it; an HTTP/1
request with neither Content-Length nor Transfer-Encoding has no body, and the app starts
without the server's empty body being awaited (a turn of a crowded loop, issue 9). Over
real sockets: tests/serving/test_connection_limits.py.
"""

import asyncio

import pytest

from config.serving.limits import BodyLimits

REQUEST_END = {"type": "http.request", "body": b"", "more_body": False}
DISCONNECT = {"type": "http.disconnect"}


def scope(*headers, http_version="1.1", method="GET"):
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "path": "/healthz",
        "headers": [(b"host", b"testserver"), *headers],
    }


class Server:
    """The server's side of `receive`: hands out `messages` in order, counting the calls."""

    def __init__(self, *messages):
        self.messages = list(messages)
        self.calls = 0

    async def receive(self):
        self.calls += 1
        return self.messages.pop(0)


class App:
    """Records, at its start, how often the server's receive had been called; then takes
    `reads` messages from its own receive."""

    def __init__(self, server, reads=2):
        self.server = server
        self.reads = reads
        self.server_calls_at_start = None
        self.received = []

    async def __call__(self, scope, receive, send):
        self.server_calls_at_start = self.server.calls
        for _ in range(self.reads):
            self.received.append(await receive())


def serve(app, server, request_scope):
    limits = BodyLimits(app, max_bytes=1024, timeout=5)

    async def send(message):
        raise AssertionError(f"BodyLimits answered itself: {message}")

    asyncio.run(limits(request_scope, server.receive, send))


def test_a_bodiless_get_reaches_the_app_before_the_server_is_asked_for_its_body():
    server = Server(REQUEST_END, DISCONNECT)
    app = App(server)

    serve(app, server, scope())

    assert app.server_calls_at_start == 0
    # Its body, empty, at once; then what the server has after its own empty body: the
    # client leaving (what Django's disconnect listener waits for).
    assert app.received == [REQUEST_END, DISCONNECT]
    assert server.calls == 2


def test_a_bodiless_get_whose_client_already_left_gets_the_disconnect():
    server = Server(DISCONNECT)
    app = App(server)

    serve(app, server, scope())

    assert app.received == [REQUEST_END, DISCONNECT]


@pytest.mark.parametrize(
    "request_scope",
    [
        scope((b"content-length", b"5"), method="POST"),
        scope((b"Transfer-Encoding", b"chunked"), method="POST"),
        scope(http_version="2", method="POST"),  # HTTP/2 frames a body without either
    ],
    ids=["content-length", "chunked", "http2"],
)
def test_a_request_that_may_carry_a_body_is_read_whole_before_the_app_starts(request_scope):
    server = Server(
        {"type": "http.request", "body": b"he", "more_body": True},
        {"type": "http.request", "body": b"llo", "more_body": False},
        DISCONNECT,
    )
    app = App(server)

    serve(app, server, request_scope)

    assert app.server_calls_at_start == 2
    whole = {"type": "http.request", "body": b"hello", "more_body": False}
    assert app.received == [whole, DISCONNECT]
