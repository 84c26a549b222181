"""Project middlewares: the request id, and request limits that hold before any view."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from .. import context
from .exceptions import api_prefix, error_response


class DualModeMiddleware:
    """A middleware Django can run in sync or async mode (no thread for async views).

    Under ASGI, one sync-only middleware makes Django run the whole chain in a thread,
    and an async view then holds that thread for its whole length: the /v1 views would
    be bounded by WEB_THREADS again. Subclasses implement `__call__` (sync) and `acall`
    (async); Django picks the mode from `get_response`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self.acall(request)
        return self.handle(request)


class ApiBodyLimitMiddleware(DualModeMiddleware):
    """Refuse /api/ requests whose declared body exceeds API_MAX_BODY_BYTES with a 413.

    DRF's parsers read the WSGI stream directly, which bypasses Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE, so the limit is checked here, before authentication, on
    the declared Content-Length (the WSGI stream never yields more than that).
    """

    def handle(self, request):
        return self._refusal(request) or self.get_response(request)

    async def acall(self, request):
        return self._refusal(request) or await self.get_response(request)

    def _refusal(self, request):
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
        return None


class RequestIdMiddleware(DualModeMiddleware):
    """X-Request-ID: the client's when it is a sane token, else a new one (SPEC §15).

    First in MIDDLEWARE, so every answer carries it (/api, /v1, /healthz, the admin, and
    the other middlewares' own answers) and every log line of the request has it (through
    `tenants.context.RequestIdLogFilter`). Also the audit actor's context: the request's
    client address and, for the admin, its user.
    """

    header = "X-Request-ID"

    def handle(self, request):
        ctx = self._context(request)
        with context.bound(ctx):
            response = self.get_response(request)
        return self._finish(response, ctx)

    async def acall(self, request):
        ctx = self._context(request)
        with context.bound(ctx):
            response = await self.get_response(request)
        return self._finish(response, ctx)

    def _context(self, request):
        request_id = context.sane_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request_id = request_id or context.new_request_id()
        request.request_id = request_id
        return context.ActionContext(
            request_id=request_id, ip=request.META.get("REMOTE_ADDR") or None, request=request
        )

    def _finish(self, response, ctx):
        request_id = ctx.request_id
        response[self.header] = request_id
        if response.streaming and not getattr(response, "binds_request_context", False):
            # A streamed body is produced after this returns: keep the request's context
            # for each chunk, so its log lines carry the id too (unless the response keeps
            # it itself: the /v1 relay).
            bind = _abound_chunks if response.is_async else _bound_chunks
            response.streaming_content = bind(response.streaming_content, ctx)
        return response


def _bound_chunks(chunks, ctx):
    iterator = iter(chunks)
    while True:
        with context.bound(ctx):
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk


async def _abound_chunks(chunks, ctx):
    iterator = aiter(chunks)
    try:
        while True:
            with context.bound(ctx):
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
            yield chunk
    finally:
        # Closed early (the client left): close what we read from now, not at GC time.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
