"""An OpenAI-compatible provider stand-in whose answers take as long as the test says.

A plain `ThreadingHTTPServer` on 127.0.0.1 (one thread per request, so it holds many calls
at once). It records how many chat calls are in progress at once (`max_in_flight`), and a
stream can be held after its first chunk until the test releases it (`hold_streams`):
synchronisation by events, never by sleeping in the test.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.upstream import MODEL, MODELS_REPLY, reply_for


class SlowProvider:
    def __init__(self, *, delay: float = 0.0, chunks: int = 5):
        self.delay = delay  # seconds each plain (non-stream) chat call takes
        self.chunks = chunks
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.stream_started = threading.Event()
        self.release_streams = threading.Event()
        self.release_streams.set()
        self._steps = threading.Semaphore(0)
        self.server: ThreadingHTTPServer | None = None

    def hold_streams(self) -> None:
        """Streams stop after each chunk until `step()` (one more) or `release()` (all)."""
        self.release_streams.clear()

    def release(self) -> None:
        self.release_streams.set()
        self._steps.release(1000)

    def step(self) -> None:
        """While held, let each open stream send one more chunk."""
        self._steps.release()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> "SlowProvider":
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                self._json(MODELS_REPLY)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with provider.lock:
                    provider.calls += 1
                    provider.in_flight += 1
                    provider.max_in_flight = max(provider.max_in_flight, provider.in_flight)
                try:
                    if body.get("stream"):
                        self._stream()
                    else:
                        time.sleep(provider.delay)  # the provider's own thinking time
                        self._json(reply_for(body)[1])
                finally:
                    with provider.lock:
                        provider.in_flight -= 1

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                # Chunked, as real providers stream: a client reads each event as it comes.
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for index in range(provider.chunks):
                    chunk = {
                        "id": "chatcmpl-slow",
                        "object": "chat.completion.chunk",
                        "model": MODEL,
                        "choices": [{"index": 0, "delta": {"content": f"part{index} "}}],
                    }
                    if index == 0:
                        # Before the write: a relay fast enough delivers this chunk to its
                        # client before this thread runs again (CI saw part0 arrive with
                        # the event still unset).
                        provider.stream_started.set()
                    self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    if not provider.release_streams.is_set():
                        provider._steps.acquire(timeout=60)
                usage = {
                    "id": "chatcmpl-slow",
                    "object": "chat.completion.chunk",
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
                }
                self._chunk(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
