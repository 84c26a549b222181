"""The web server keeps serving everyone else (issue 9.5, 15.1, 15.17), over real sockets.

A real server process (scripts/serve-web.sh: granian, one worker) against 200 connections
that trickle their headers (slowloris), 200 that sit idle, oversized and slow bodies and
headers. The bounds asserted are generous (a functional test on a busy machine, not a
timing benchmark): /healthz answers within HEALTHZ_BOUND seconds.
"""

import json
import secrets
import socket
import time

from .conftest import BODY_TIMEOUT, HEADER_TIMEOUT

HEALTHZ_BOUND = 5.0
CONNECTIONS = 200


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_response(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `limit` passes)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def read_one_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response with a Content-Length, leaving the connection open."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return head, body


def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = read_response(sock, limit=HEALTHZ_BOUND * 2)
    elapsed = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    return elapsed


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed this connection (EOF or reset)."""
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_healthz_answers_while_200_connections_trickle_headers_and_they_are_closed(server):
    trickling = [connect(server.port) for _ in range(CONNECTIONS)]
    try:
        for sock in trickling:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed: set[int] = set()

        assert healthz_seconds(server.port) < HEALTHZ_BOUND

        # Keep trickling one header line per connection until the server gives up on them.
        deadline = started + HEADER_TIMEOUT + 30
        while len(closed) < CONNECTIONS and time.monotonic() < deadline:
            for index, sock in enumerate(trickling):
                if index in closed:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed.add(index)
                    continue
                if is_closed(sock):
                    closed.add(index)
            time.sleep(0.2)  # the trickle's own pace (the attack), not a synchronisation
        assert len(closed) == CONNECTIONS, f"{CONNECTIONS - len(closed)} still open"
        # Not before the header timeout: the server closed them for being slow.
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
        assert healthz_seconds(server.port) < HEALTHZ_BOUND
    finally:
        for sock in trickling:
            sock.close()


def test_healthz_answers_while_200_connections_sit_idle(server):
    idle = [connect(server.port) for _ in range(CONNECTIONS)]
    try:
        assert healthz_seconds(server.port) < HEALTHZ_BOUND
        # A kept-alive connection between requests is idle too.
        with connect(server.port) as sock:
            for _ in range(3):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head, _ = read_one_response(sock)
                assert head.startswith(b"HTTP/1.1 200")
        assert healthz_seconds(server.port) < HEALTHZ_BOUND
    finally:
        for sock in idle:
            sock.close()


def test_a_large_body_the_view_never_reads_leaves_the_connection_usable(server):
    # 200 KB (under the 256 KB server limit) to a view that ignores bodies, then a second
    # request on the same kept-alive connection: it must be answered, not dropped (15.17).
    body = b"x" * (200 * 1024)
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        first, _ = read_one_response(sock)
        assert first.split(b" ")[1] in (b"403", b"200"), first[:200]  # CSRF refuses it
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        second = read_response(sock)
        assert second.startswith(b"HTTP/1.1 200"), second[:200]


def test_a_body_over_the_limit_is_refused_and_the_connection_closed(server):
    with connect(server.port) as sock:
        # Declared too large: refused before a byte of it is read.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" + b"{" * 1000
        )
        response = read_response(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"connection: close" in head.lower()
    assert b'"code": "request_too_large"' in body  # the OpenAI shape on /v1
    assert b'"type": "invalid_request_error"' in body
    # The server closed the connection after answering (read_response saw EOF): no
    # keep-alive answer followed by a drop.

    with connect(server.port) as sock:
        # Chunked, no declared length: refused once it passes the limit.
        sock.sendall(
            b"POST /api/llm/test HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"y" * 65536
        try:
            for _ in range(8):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server may close while we are still sending
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b'"code": "request_too_large"' in response  # the /api shape
    assert b'"details": {"max_bytes": 262144}' in response


def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout(server):
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        response = read_response(sock, limit=30)
        elapsed = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert b'"code": "request_timeout"' in response
    assert elapsed >= BODY_TIMEOUT * 0.9  # SERVER_BODY_TIMEOUT_SECONDS, not at once


def test_oversized_headers_are_refused_without_stopping_the_server(server):
    with connect(server.port) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + b"X-Big: "
            + b"z" * (200 * 1024)
            + b"\r\n\r\n"
        )
        response = read_response(sock)
    # Refused (431/400) or the connection closed: never served, never hung.
    assert not response.startswith(b"HTTP/1.1 200"), response[:200]
    assert healthz_seconds(server.port) < HEALTHZ_BOUND


def test_a_client_that_leaves_mid_body_is_logged_499_not_500(server):
    """granian logs 500 for a request the application did not answer; one whose client
    left is logged as nginx logs it, 499 (client closed request)."""
    path = f"/v1/leaves-{secrets.token_hex(4)}"
    with connect(server.port) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        time.sleep(0.2)  # the body has begun: the request is the application's
    deadline = time.monotonic() + 10
    while not (lines := [line for line in server.log().splitlines() if path in line]):
        assert time.monotonic() < deadline, "no access-log line for the request"
        time.sleep(0.05)
    assert len(lines) == 1 and f'"POST {path} HTTP/1.1" 499 ' in lines[0], lines


def test_bodiless_requests_on_one_kept_alive_connection_are_each_answered(server):
    # GETs without Content-Length reach the app without their (empty) body being awaited;
    # the server's empty body message must not be taken for the next request's.
    with connect(server.port) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, body = read_one_response(sock)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            assert json.loads(body)["checks"]["database"]["status"] == "ok", body
        sock.sendall(
            b"POST /api/llm/test HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n"
        )
        head, _ = read_one_response(sock)
        assert head.split(b" ")[1] in (b"401", b"403"), head[:200]  # no key: refused
        # Its chunked body was read off the connection: the next request is answered.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
