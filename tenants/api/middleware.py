"""Request limits for the REST API that must hold before any view reads the body."""

from django.conf import settings

from .exceptions import api_prefix, error_response


class ApiBodyLimitMiddleware:
    """Refuse /api/ requests whose declared body exceeds API_MAX_BODY_BYTES with a 413.

    DRF's parsers read the WSGI stream directly, which bypasses Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE, so the limit is checked here, before authentication, on
    the declared Content-Length (the WSGI stream never yields more than that).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(api_prefix()):
            limit = settings.API_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response("bad_request", "Invalid Content-Length header.", 400)
            if length > limit:
                return error_response(
                    "request_too_large",
                    f"The request body is larger than the {limit} bytes allowed.",
                    413,
                    {"max_bytes": limit},
                )
        return self.get_response(request)
