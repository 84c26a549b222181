"""Slow clients against a running server: do its own timeouts close them? (run by hand)

    python bench/serving/slow_clients.py PORT [N] [trickle|idle]

Opens N connections (200) that either trickle a header line every second after the request
line (slowloris) or send nothing at all, for at most 40 s; prints how long /healthz took
before and after, and how many of the connections the server closed, and when.
"""

import select
import socket
import sys
import time


def healthz(port: int) -> tuple[float, bytes]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = sock.recv(100)[:15]
    return round(time.monotonic() - started, 3), status


def main(port: int, count: int, mode: str) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    if mode == "trickle":
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    print("healthz while they are open:", healthz(port))
    closed: set[int] = set()
    while time.monotonic() - started < 40 and len(closed) < count:
        for index, sock in enumerate(socks):
            if index in closed:
                continue
            if mode == "trickle":
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed.add(index)
                    continue
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # EOF, a reset or an error response: the server gave up on it
                closed.add(index)
        time.sleep(1)
    elapsed = round(time.monotonic() - started, 1)
    print(f"{mode}: the server closed {len(closed)} of {count} within {elapsed} s")
    print("healthz afterwards:", healthz(port))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]),
        int(args[1]) if len(args) > 1 else 200,
        args[2] if len(args) > 2 else "trickle",
    )
