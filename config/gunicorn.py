"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`.

Chosen by measurement (bench/README.md, "OpenAI-compatible gateway"): threaded workers,
one process per core. Sync workers have no keep-alive (a new connection per request) and
hold a whole process per open stream; ASGI (uvicorn) ran Django's sync views through a
thread hop at more than twice the CPU per request; more processes than cores only added
contention. Threads are cheap while a request waits on the provider, so streams (which
hold a thread for their whole length) get plenty of them.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 16))
# Keep-alive matters: SDKs and gateways in front reuse connections.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))
backlog = 2048
# Long streams are normal; the provider's own read timeout bounds a silent one.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 300))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
