"""An OpenAI-shaped provider stand-in with a real model's timing (stdlib asyncio only).

    python3 bench/concurrency/standin.py --ports 19081,19082 [--delay 1.0] [--chunks 20]

One process, one event loop, raw HTTP/1.1 (keep-alive) on every port given; it holds
thousands of open connections because a waiting answer is a timer, not a thread or task:

- `POST …/chat/completions`: answers after `--delay` s; with `"stream": true`, sends
  `--chunks` SSE chunks `--interval` s apart (the first after one interval, so a stream
  lasts about chunks × interval), then a usage chunk when `stream_options.include_usage`,
  then `data: [DONE]` (chunked transfer encoding).
- `GET …/models`, `GET /healthz`.
- `GET /stats`: JSON counters per port — `started`, `answered` (an answer began: the
  whole plain answer, or a stream's headers and first chunk, was written to an open
  connection), `completed` (the whole answer, `[DONE]` included, was written),
  `abandoned` (the client left before the answer was complete), `open` (calls in
  progress), `last_start` (seconds since the last call started, None before any).

The driver compares `answered` with the usage rows a gateway wrote, and waits for `open`
to drop to 0 (and no new call to start) before the next load, so that calls a gateway
goes on making after its clients left are seen, not mixed into the next measurement.
"""

import argparse
import asyncio
import json
import time

MODEL = "gpt-4o-mini"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj) -> bytes:
    return _chunked(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


class Config:
    def __init__(self, args):
        self.delay = args.delay
        self.chunks = args.chunks
        self.interval = args.interval
        usage = {
            "prompt_tokens": 9,
            "completion_tokens": self.chunks,
            "total_tokens": 9 + self.chunks,
        }
        body = json.dumps(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": 1764300000,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok " * self.chunks},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            separators=(",", ":"),
        ).encode()
        self.plain = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        base = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": 1764300000,
            "model": MODEL,
        }
        self.first_chunk = _sse(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "ok "},
                        "finish_reason": None,
                    }
                ],
            }
        )
        self.chunk = _sse(
            {**base, "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}]}
        )
        self.last_chunk = _sse(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )
        self.usage_chunk = _sse({**base, "choices": [], "usage": usage})
        self.done = _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        models = json.dumps(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "standin"}]}
        ).encode()
        self.models = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (
                len(models),
                models,
            )
        )
        self.health = _response("200 OK", b'{"status":"ok"}')


class Counters:
    def __init__(self):
        self.started = 0
        self.answered = 0
        self.completed = 0
        self.abandoned = 0
        self.open = 0
        self.last_start = None

    def as_dict(self):
        last = None if self.last_start is None else round(time.monotonic() - self.last_start, 3)
        return {
            "started": self.started,
            "answered": self.answered,
            "completed": self.completed,
            "abandoned": self.abandoned,
            "open": self.open,
            "last_start": last,
        }


def _response(status: str, body: bytes, ctype=b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        ctype,
        len(body),
        body,
    )


class Handler(asyncio.Protocol):
    def __init__(self, cfg: Config, counters: Counters, all_counters: dict):
        self.cfg = cfg
        self.c = counters
        self.all = all_counters
        self.buf = b""
        self.transport = None
        self.busy = False  # a chat call is in progress on this connection
        self.timer = None
        self.step = 0
        self.usage = False
        self.close_after = False
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.busy:
            self.busy = False
            self.c.open -= 1
            self.c.abandoned += 1
        self.transport = None

    def data_received(self, data):
        self.buf += data
        while not self.busy and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, path, _ = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(_response("400 Bad Request", b"{}"))
                self.transport.close()
                return
            length = 0
            self.close_after = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    self.close_after = True
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.route(method, path.split("?", 1)[0], body)

    def send(self, data: bytes):
        self.transport.write(data)
        if self.close_after:
            self.transport.close()

    def route(self, method, path, body):
        cfg = self.cfg
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                self.send(_response("400 Bad Request", b'{"error":{"message":"bad json"}}'))
                return
            self.busy = True
            self.c.started += 1
            self.c.open += 1
            self.c.last_start = time.monotonic()
            if req.get("stream"):
                self.usage = bool((req.get("stream_options") or {}).get("include_usage"))
                self.step = 0
                self.timer = self.loop.call_later(cfg.interval, self.stream_step)
            else:
                self.timer = self.loop.call_later(cfg.delay, self.plain_done)
        elif method == "GET" and path.endswith("/models"):
            self.send(cfg.models)
        elif method == "GET" and path == "/healthz":
            self.send(cfg.health)
        elif method == "GET" and path == "/stats":
            stats = {str(port): c.as_dict() for port, c in self.all.items()}
            self.send(_response("200 OK", json.dumps(stats).encode()))
        else:
            self.send(_response("404 Not Found", b'{"error":{"message":"not found"}}'))

    def finish(self):
        self.timer = None
        self.busy = False
        self.c.open -= 1
        self.c.completed += 1
        if self.close_after:
            self.transport.close()
        elif self.buf:
            self.data_received(b"")

    def plain_done(self):
        self.c.answered += 1
        self.transport.write(self.cfg.plain)
        self.finish()

    def stream_step(self):
        cfg = self.cfg
        self.step += 1
        if self.step == 1:
            self.c.answered += 1
            self.transport.write(cfg.stream_head + cfg.first_chunk)
        elif self.step < cfg.chunks:
            self.transport.write(cfg.chunk)
        else:
            tail = cfg.last_chunk + (cfg.usage_chunk if self.usage else b"") + cfg.done
            self.transport.write((cfg.chunk if cfg.chunks > 1 else b"") + tail)
            self.finish()
            return
        self.timer = self.loop.call_later(cfg.interval, self.stream_step)


async def main(args):
    cfg = Config(args)
    ports = [int(p) for p in args.ports.split(",")]
    counters = {port: Counters() for port in ports}
    loop = asyncio.get_running_loop()
    servers = []
    for port in ports:
        servers.append(
            await loop.create_server(
                lambda port=port: Handler(cfg, counters[port], counters),
                args.host,
                port,
                backlog=8192,
                reuse_address=True,
            )
        )
    print(f"standin listening on {args.host}:{ports}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ports", required=True)
    ap.add_argument("--delay", type=float, default=1.0, help="plain answer after this many seconds")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between stream chunks")
    args = ap.parse_args()
    try:
        import uvloop  # optional: faster when the interpreter has it

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
