"""The ASGI application `scripts/run.sh` serves (granian; see config/serving/).

Outermost first: (with SERVER_HEALTH_PORT set) the serving loop's heartbeat for the probe
port, the body limits (nothing reaches Django before its body is complete and
within bounds), then the pooled threads the sync views run on, then Django (its handler
as config/serving/handler.py adapts it).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does

from django.conf import settings  # noqa: E402  (settings are configured by the line above)

from config.serving import gc, numbers, probe  # noqa: E402
from config.serving.handler import ServingASGIHandler  # noqa: E402
from config.serving.limits import BodyLimits  # noqa: E402
from config.serving.threads import SyncViewThreads  # noqa: E402

numbers.check(settings)
gc.tune(settings.SERVER_GC_THRESHOLD)

# Django's ASGIHandler minus the thread hops an async-view request does not need.
django_application = ServingASGIHandler()

application = BodyLimits(
    SyncViewThreads(django_application, size=settings.WEB_THREADS),
    max_bytes=settings.SERVER_MAX_BODY_BYTES,
    timeout=settings.SERVER_BODY_TIMEOUT_SECONDS,
)
# With SERVER_HEALTH_PORT set: the probe port listening, the loop's heartbeat watched.
application = probe.serve(application)
