"""The probe port (config/serving/probe.py): /healthz beside the serving loop, over sockets.

In process: the listener on a free port, its answers, its refusals and its limits, and a
serving loop (an event loop on a thread of the test) that is blocked while probes still
answer. Then the real server (scripts/serve-web.sh, two worker processes) with
SERVER_HEALTH_PORT set.
"""

import asyncio
import json
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.serving import probe
from tests.support.processes import (
    WebServer,
    get_json,
    manage,
    process_env,
    subprocess_database,
    wait_until,
)

CHECKS = {"status": "ok", "checks": {"process": {"status": "ok"}, "database": {"status": "ok"}}}


def request(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request on a new connection, read to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def healthz(port: int, method: str = "GET") -> tuple[int, dict, bytes]:
    return request(port, f"{method} /healthz HTTP/1.1\r\nHost: probe\r\n\r\n".encode())


class ServingLoop:
    """An event loop on a thread, watched like the served application's."""

    def __init__(self, watch: probe.LoopWatch):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = Future()
        self.loop.call_soon_threadsafe(lambda: (watch.watch(self.loop), started.set_result(1)))
        started.result(10)

    def block(self) -> threading.Event:
        """Block the loop until the returned event is set."""
        release = threading.Event()
        self.loop.call_soon_threadsafe(release.wait, 30)
        return release

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def listener(settings):
    """A probe port on 127.0.0.1 (a free port), its serving loop watched, a stall limit of
    0.5 s; `answer` (the monitor's) is an attribute the test may replace."""
    settings.SERVER_HEALTH_STALL_SECONDS = 0.5
    watch = probe.LoopWatch()
    serving = ServingLoop(watch)
    holder = type("Holder", (), {})()
    holder.answer = lambda: (200, CHECKS)
    server = probe.ProbeServer("127.0.0.1", 0, watch=watch, monitor=holder).start()
    holder.port, holder.serving = server.port, serving
    yield holder
    server.stop()
    serving.close()


def test_a_probe_gets_the_checks_and_how_late_the_serving_loop_is(listener):
    status, headers, body = healthz(listener.port)

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert headers["Cache-Control"] == "no-store"
    report = json.loads(body)
    assert report["status"] == "ok"
    assert report["checks"]["database"] == {"status": "ok"}
    loop = report["checks"]["loop"]
    assert loop["status"] == "ok" and isinstance(loop["lag_ms"], int) and loop["lag_ms"] < 500
    assert "loop" not in CHECKS["checks"]  # the monitor's result is copied, never changed


def test_head_answers_the_headers_without_the_body(listener):
    status, headers, body = healthz(listener.port, "HEAD")

    assert status == 200
    assert int(headers["Content-Length"]) > 0
    assert body == b""


def test_probes_answer_while_the_serving_loop_is_blocked_and_fail_once_it_stalls(listener):
    release = listener.serving.block()
    try:
        # The probe answers although the loop it reports on runs nothing, and says so
        # once the stall outlasts the limit (0.5 s here).
        status, _, body = wait_until(
            lambda: (r := healthz(listener.port))[0] == 503 and r,
            timeout=20,
            what="the probe reporting the stalled loop",
        )
        report = json.loads(body)
        assert report["status"] == "fail"
        assert report["checks"]["loop"]["status"] == "fail"
        assert report["checks"]["loop"]["lag_ms"] > 500
    finally:
        release.set()

    wait_until(
        lambda: healthz(listener.port)[0] == 200,
        timeout=20,
        what="the probe passing again once the loop turns",
    )


def test_a_probe_waits_for_the_first_result_of_the_checks(listener):
    asked, result = threading.Event(), Future()

    def answer():
        asked.set()
        return result

    listener.answer = answer
    with ThreadPoolExecutor(1) as pool:
        probed = pool.submit(healthz, listener.port)
        assert asked.wait(10)
        assert not probed.done()
        result.set_result((200, CHECKS))
        status, _, body = probed.result(10)

    assert status == 200
    assert json.loads(body)["checks"]["database"] == {"status": "ok"}


def test_checks_that_do_not_answer_in_time_are_a_503(listener, settings):
    listener.answer = Future  # a result that never comes
    settings.LLM_HEALTHZ_TIMEOUT_SECONDS = 0.2

    status, _, body = healthz(listener.port)

    assert status == 503
    report = json.loads(body)
    assert report["status"] == "fail"
    assert report["checks"]["database"] == {"status": "fail"}


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "method_not_allowed"),
        (b"GET /api/llm/usage HTTP/1.1\r\n\r\n", 404, "not_found"),
        (b"GET /healthz/../admin HTTP/1.1\r\n\r\n", 404, "not_found"),
        (b"NONSENSE\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz SPDY/3\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", 431, "bad_request"),
    ],
)
def test_anything_but_a_healthz_probe_is_refused_in_the_error_shape(listener, data, status, code):
    got, headers, body = request(listener.port, data)

    assert got == status
    assert json.loads(body)["error"]["code"] == code
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"
    assert healthz(listener.port)[0] == 200  # and the listener goes on


def test_a_trickling_client_is_closed_while_probes_are_answered(listener, monkeypatch):
    monkeypatch.setattr(probe, "READ_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: pro")

        assert healthz(listener.port)[0] == 200
        assert slow.recv(1024) == b""  # closed by the listener, unanswered


def test_connections_over_the_limit_are_closed_at_once(listener, monkeypatch):
    monkeypatch.setattr(probe, "MAX_CONNECTIONS", 2)
    held = [socket.create_connection(("127.0.0.1", listener.port), timeout=10) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # heads that never end
        wait_until(
            lambda: _refused(listener.port),
            timeout=10,
            what="a third connection closed without an answer",
        )
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: healthz(listener.port)[0] == 200, timeout=10, what="probes again")


def _refused(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            return sock.recv(1024) == b""
        except ConnectionError:
            return True


def test_a_port_another_process_holds_is_an_error_naming_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = probe.ProbeServer("127.0.0.1", port, watch=probe.LoopWatch(), monitor=None)

        with pytest.raises(ImproperlyConfigured, match="SERVER_HEALTH_PORT: cannot listen"):
            server.start()


@pytest.mark.parametrize("value", [-1, 65536, True, "8001", 1.5])
def test_a_port_out_of_range_is_an_error_naming_the_setting(value):
    with pytest.raises(ImproperlyConfigured, match="SERVER_HEALTH_PORT must be 0"):
        probe.check_port(value)


def test_without_a_probe_port_the_application_is_served_as_it_is(settings):
    settings.SERVER_HEALTH_PORT = 0
    app = object()

    assert probe.serve(app) is app


def test_the_heartbeat_starts_at_the_first_request():
    watch = probe.LoopWatch()

    async def app(scope, receive, send):
        return "served"

    watched = probe.Watched(app, watch)
    assert watch.lag() is None  # before any request: nothing ran on the loop

    async def first_request():
        return await watched({}, None, None), watch.lag()

    served, lag = asyncio.run(first_request())
    assert served == "served"
    assert lag is not None and lag < 1


# --- The served application --------------------------------------------------------------


def test_each_web_process_answers_on_the_probe_port_with_the_real_checks(tmp_path):
    probe_port = _free_port()
    with subprocess_database(tmp_path) as database_url:
        env = process_env(database_url, tmp_path, WEB_CONCURRENCY="2")
        manage(env, "migrate", "--noinput", "-v", "0")
        web = WebServer({**env, "SERVER_HEALTH_PORT": str(probe_port)}, tmp_path / "web.log")
        web.start()
        try:
            main = get_json(f"{web.base_url}/healthz")
            pids, lags = set(), set()

            def both_processes_answered():
                report = get_json(f"http://127.0.0.1:{probe_port}/healthz")
                assert report["status"] != "fail", report
                assert report["checks"]["database"]["status"] == "ok"
                pids.add(report["checks"]["loop"]["pid"])
                lags.add(report["checks"]["loop"]["lag_ms"] is not None)
                get_json(f"{web.base_url}/healthz")  # a request: that loop's heartbeat starts
                return len(pids) == 2 and True in lags

            wait_until(both_processes_answered, timeout=60, what="both processes probed")
        finally:
            web.stop()

    assert main["status"] != "fail" and "loop" not in main["checks"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
