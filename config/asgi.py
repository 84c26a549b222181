"""The ASGI application `scripts/run.sh` serves (granian; see config/serving/).

Outermost first: the body limits (nothing reaches Django before its body is complete and
within bounds), then the pooled threads the sync views run on, then Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (settings are configured by the line above)

from config.serving.limits import BodyLimits  # noqa: E402
from config.serving.threads import SyncViewThreads  # noqa: E402

application = BodyLimits(
    SyncViewThreads(django_application, size=settings.WEB_THREADS),
    max_bytes=settings.SERVER_MAX_BODY_BYTES,
    timeout=settings.SERVER_BODY_TIMEOUT_SECONDS,
)
