"""CPU per access-log line, as granian writes it (its own logger and format) to a file.

    .venv/bin/python bench/concurrency/access_log.py [--lines 20000] [--repeat 5]

What `SERVER_ACCESS_LOG=false` saves a web process per request (scripts/serve-web.sh):
granian's access logger called as its ASGI wrapper calls it after each request, with
the scope of a /v1 chat call, its handler writing to a temporary file as the server's
standard output does. Best and median of --repeat blocks, in CPU time.
"""

import argparse
import logging
import statistics
import sys
import tempfile
import time

from granian import log as granian_log
from granian.asgi import _build_access_logger

SCOPE = {
    "type": "http",
    "client": ("127.0.0.1", 50000),
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "query_string": b"",
    "headers": [(b"content-type", b"application/json")],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    granian_log.configure_logging(granian_log.LogLevels.info, None, True)
    with tempfile.NamedTemporaryFile("w", suffix=".log") as out:
        handlers = logging.getLogger("granian.access").handlers
        streams = [h for h in handlers if isinstance(h, logging.StreamHandler)]
        if not streams:
            sys.exit("granian's access logger has no stream handler: its set-up changed")
        for handler in streams:
            handler.setStream(out)
        access_log = _build_access_logger(granian_log.DEFAULT_ACCESSLOG_FMT)
        per_line = []
        for _ in range(args.repeat):
            started = time.process_time()
            for _ in range(args.lines):
                access_log(time.time(), time.perf_counter(), SCOPE, 200)
            per_line.append((time.process_time() - started) / args.lines)
    print(
        f"access log: {1e6 * min(per_line):.1f} µs CPU per line at best, "
        f"{1e6 * statistics.median(per_line):.1f} µs median ({args.repeat} × {args.lines} lines)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
