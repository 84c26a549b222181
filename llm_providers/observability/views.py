"""`GET /metrics`: Prometheus text format, for the operator's scraper only (SPEC §15).

With METRICS_TOKEN set: `Authorization: Bearer <token>` is required (compared in constant
time). Unset: loopback clients only, and not through a proxy (a request carrying
X-Forwarded-For or Forwarded came from elsewhere, even if the proxy itself is local).
"""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import metrics


def _plain(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def _is_loopback(request) -> bool:
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@require_GET
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            response = _plain(401, "Send Authorization: Bearer <METRICS_TOKEN>.")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _is_loopback(request):
        return _plain(403, "Metrics answer loopback clients only unless METRICS_TOKEN is set.")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
