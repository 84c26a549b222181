"""The deadline of a blocking read, for the sync transport (issue 15.2).

A socket timeout bounds one `recv`, not a read: a body trickled in a few bytes at a time
(below 64 KB per `read(65536)`, each `recv` well within the read timeout) would outlive
any deadline. So while a sync call reads a reply body or a stream, its socket is
registered here with the call's end time; one daemon thread per process shuts the socket
down when that time passes, which makes the blocked read return at once. The reader then
sees the deadline has passed and reports a timeout. The async transport needs none of
this: `asyncio.timeout` bounds every await.

Registering costs a heap push under a lock; the thread sleeps until the earliest end.
"""

import heapq
import itertools
import os
import socket
import threading
import time


class _Entry:
    __slots__ = ("sock", "cancelled", "fired")

    def __init__(self, sock):
        self.sock = sock
        self.cancelled = False
        self.fired = False


class Watchdog:
    def __init__(self):
        self._heap: list = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def guard(self, sock, end: float) -> _Entry:
        entry = _Entry(sock)
        with self._cond:
            heapq.heappush(self._heap, (end, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="llm-read-deadline", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is entry:
                self._cond.notify()
        return entry

    def cancel(self, entry: _Entry | None) -> None:
        if entry is not None:
            entry.cancelled = True  # dropped lazily when its time comes

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].cancelled or self._heap[0][0] <= now):
                    _, _, entry = heapq.heappop(self._heap)
                    if not entry.cancelled:
                        entry.fired = True
                        _shut(entry.sock)
                timeout = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout)


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def response_socket(response):
    """The socket under a requests.Response (urllib3 2.x), None when there is none."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:  # a response whose connection went back to the pool: its fp's socket
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock


watchdog = Watchdog()


def guard_response(response, end: float | None) -> _Entry | None:
    if end is None:
        return None
    sock = response_socket(response)
    if sock is None:
        return None
    return watchdog.guard(sock, end)


def _after_fork() -> None:
    global watchdog
    watchdog = Watchdog()


os.register_at_fork(after_in_child=_after_fork)
