"""OpenAI-compatible endpoints: `POST /v1/chat/completions`, `GET /v1/models` (SPEC §7).

Plain Django views rather than DRF: the measured cost of DRF's request/response machinery
was a large share of the per-request budget (bench/README.md). Authentication is the
same tenant API key as the REST API (`resolve_api_key`, behind a short cache).

`Server-Timing` on every answer: `provider` (time on the wire to the provider, waits
between retries excluded), `gateway` (everything else) and `total`, in milliseconds, as
measured inside the view. For a stream the headers leave before the body, so `provider`
is the time until the provider's response headers (time to first byte) and `total` the
time until our own headers were sent; the stream's full duration is the usage row's
`latency_ms`.

Async views (issue 9): a call waiting on its provider costs a socket and a coroutine,
not a thread. With the /v1 caches warm, nothing here touches the database until the
usage row (written on a thread: engine/aio.py). A client that leaves cancels the view
(Django's ASGI handler): a plain call's provider request is closed and its row says
`client_disconnected`; a stream is closed at once (`RelayResponse`) and its row says so.
The database being down or failing usage writes is answered with a 503 before any
provider is called (`_database_refusal`).
"""

import asyncio
import contextvars
import json
import logging
import time

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied

from tenants import context
from tenants.authentication import bearer_key, resolve_request_tenant

from .. import limits, observability
from ..engine.aio import run_db
from ..usage import spool
from . import cache, wire
from .errors import error_response, provider_error_response

logger = logging.getLogger(__name__)

SSE = "text/event-stream"
JSON = "application/json"


def authenticate(request):
    """(tenant_id, None) or (None, a 401/403/503 answer); sync (it may query).

    A Bearer key when the request has one (a wrong key is a 401, never a fall-through);
    otherwise the host project's SWITCHYARD_TENANT_RESOLVER, when one is set
    (tenants/authentication.py).
    """
    try:
        key = bearer_key(request.META.get("HTTP_AUTHORIZATION"))
    except AuthenticationFailed as exc:
        return None, _unauthorized(str(exc.detail))
    if key is None:
        try:
            tenant = resolve_request_tenant(request)
        except AuthenticationFailed as exc:
            return None, _unauthorized(str(exc.detail))
        except PermissionDenied as exc:
            return None, error_response(
                403, str(exc.detail), "invalid_request_error", "permission_denied"
            )
        except DatabaseError as exc:
            return None, _database_unavailable(exc)
        if tenant is not None:
            return tenant.pk, None
        return None, _unauthorized(
            "No API key provided: send `Authorization: Bearer <tenant API key>`."
        )
    try:
        api_key = cache.authenticate_key(key)
    except AuthenticationFailed as exc:
        return None, _unauthorized(str(exc.detail))
    except DatabaseError as exc:
        return None, _database_unavailable(exc)
    return api_key.tenant_id, None


async def _authenticate(request):
    """`authenticate` for the async views: a warm key cache touches no database."""
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    key = key.strip()
    if scheme.lower() == "bearer" and key:
        try:
            api_key = cache.cached_key(key)
        except AuthenticationFailed as exc:
            return None, _unauthorized(str(exc.detail))
        if api_key is not None:
            return api_key.tenant_id, None
    return await run_db(authenticate, request)


def _database_unavailable(exc: BaseException | None = None) -> HttpResponse:
    if exc is not None:
        logger.error("/v1: the database is unavailable (%s)", type(exc).__name__)
    response = error_response(
        503,
        "The service cannot record usage right now (database unavailable); retry shortly.",
        "service_unavailable",
        "database_unavailable",
    )
    response["Retry-After"] = "5"
    return response


def _database_refusal() -> HttpResponse | None:
    """A 503 before the provider is called while usage writes are failing (issue 15.5):
    a call must never be made that cannot be accounted. Calls already answered are
    never lost: their rows are retried, then spooled (usage/spool.py)."""
    if spool.failing_now():
        return _database_unavailable()
    return None


def _unauthorized(message: str) -> HttpResponse:
    response = error_response(401, message, "invalid_request_error", "invalid_api_key")
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _method_not_allowed(allowed: str) -> HttpResponse:
    response = error_response(
        405, f"Method not allowed; use {allowed}.", "invalid_request_error", "method_not_allowed"
    )
    response["Allow"] = allowed
    return response


def _server_timing(response, started: float, provider_ms: float | None) -> None:
    total = (time.perf_counter() - started) * 1000
    parts = []
    if provider_ms is not None:
        parts.append(f"provider;dur={provider_ms:.3f}")
        parts.append(f"gateway;dur={max(total - provider_ms, 0):.3f}")
        observability.gateway_overhead(max(total - provider_ms, 0) / 1000)  # [issue 12]
    parts.append(f"total;dur={total:.3f}")
    response["Server-Timing"] = ", ".join(parts)


class RelayResponse(StreamingHttpResponse):
    """A streamed answer whose source is closed the moment the relay stops.

    When the client leaves, Django's ASGI handler cancels the request and closes the
    response's iterator; but the middlewares' and Django's own wrapper generators do not
    close what they iterate, so the source would only be closed when garbage-collected,
    after the request (and its thread lease) ended. Closing the source here, inside the
    request, closes the upstream connection and writes the usage row deterministically.

    The relay is the hot loop of every stream (one pass per provider read), so it keeps
    its own layers few: its source yields bytes, and while no middleware has replaced its
    content it is iterated directly, without Django's per-chunk `make_bytes` wrapper. It
    also keeps the request's context (its id on every log line) itself, for each chunk
    (`binds_request_context`: RequestIdMiddleware does not wrap it again).
    """

    binds_request_context = True

    def __init__(self, source, stream=None, **kwargs):
        self._source = source
        super().__init__(source, **kwargs)
        self._request_context = context.current()
        if stream is not None:
            _close_when_request_ends(stream)

    def _set_streaming_content(self, value):
        super()._set_streaming_content(value)
        self._replaced = value is not self._source  # by a middleware (GZip, a host's own)

    async def __aiter__(self):
        parts = self.streaming_content if self._replaced else self._source
        request_context = self._request_context
        try:
            while True:
                token = context.bind(request_context)
                try:
                    part = await anext(parts)
                except StopAsyncIteration:
                    return
                finally:
                    context.unbind(token)
                yield part
        finally:
            await self._source.aclose()


_closing_streams: set = set()  # strong references to the close tasks until they end


def _close_when_request_ends(stream) -> None:
    """Close `stream` (writing its row) when the request's task ends, if nothing did.

    A client that leaves while the response is still on its way out (a middleware's
    thread hop, before the relay starts, or while it waits to send) cancels the request
    before the relay's `finally` can run: the stream, already answered by the provider,
    kept no row (the bench: ~200 of 2,300 streams at 1,024 open). The view runs in the
    request's own task (Django's ASGI handler); once it ends, an unclosed stream is
    closed here. A stream relayed to its end has written its row: then this is a no-op.
    """
    task = asyncio.current_task()
    if task is None:
        return

    def ended(_task) -> None:
        if stream.result is None and not stream._closing:
            # A fresh context: the request's thread-sensitive context has exited.
            loop = asyncio.get_running_loop()
            closing = loop.create_task(stream.aclose(), context=contextvars.Context())
            _closing_streams.add(closing)
            closing.add_done_callback(_closing_streams.discard)

    task.add_done_callback(ended)


def _under_wsgi(request) -> bool:
    return not isinstance(request, ASGIRequest)


@csrf_exempt
async def chat_completions(request):
    if _under_wsgi(request):
        from .views_wsgi import chat_completions_wsgi

        return await sync_to_async(chat_completions_wsgi)(request)
    started = time.perf_counter()
    response, provider_ms = await _chat_completions(request, started)
    tenant_id = getattr(request, "llm_tenant_id", None)
    if tenant_id is not None and limits.needs_headers(tenant_id):
        await run_db(rate_limit_headers, request, response)
    if "Server-Timing" not in response:
        _server_timing(response, started, provider_ms)
    return response


def parse_chat(request):
    """(the parsed chat request, None) or (None, its 4xx answer, or the 503 while usage
    writes fail); shared by the async view and its WSGI twin."""
    try:
        chat = wire.parse_chat_request(request.body)
    except RequestDataTooBig:
        return None, error_response(
            413, "The request body is too large.", "invalid_request_error", "request_too_large"
        )
    except wire.BadRequest as exc:
        return None, error_response(400, exc.message, "invalid_request_error", exc.code, exc.param)
    return chat, _database_refusal()


async def _chat_completions(request, started):
    if request.method != "POST":
        return _method_not_allowed("POST"), None
    tenant_id, denied = await _authenticate(request)
    if denied is not None:
        return denied, None
    request.llm_tenant_id = tenant_id
    chat, refused = parse_chat(request)
    if refused is not None:
        return refused, None
    try:
        service = await wire.aservice_for(tenant_id)
    except DatabaseError as exc:
        return _database_unavailable(exc), None
    try:
        if chat.stream:
            t0 = time.perf_counter()
            stream = await wire.astart_stream(service, chat)
            provider_ms = (time.perf_counter() - t0) * 1000
        else:
            result = await wire.arun_chat(service, chat)
    except ValueError as exc:  # the service's own validation: a malformed request
        return error_response(400, str(exc), "invalid_request_error", "invalid_value"), None

    if not chat.stream:
        return chat_answer(request, result)
    return stream_answer(
        request,
        stream,
        started,
        provider_ms,
        lambda: RelayResponse(
            wire.asse_events(stream, chat, stream.model), stream, content_type=SSE
        ),
    )


def chat_answer(request, result) -> tuple[HttpResponse, float | None]:
    """(the answer, provider ms) of a plain chat call: its JSON, or its error (both views)."""
    request.llm_admission = result.admission
    if not result.success:
        return provider_error_response(result.error), result.upstream_ms or None
    body = json.dumps(wire.completion_body(result), separators=(",", ":"))
    response = HttpResponse(body, content_type=JSON)
    response["x-switchyard-provider"] = result.provider  # who served (fallbacks)
    return response, result.upstream_ms


def stream_answer(request, stream, started, provider_ms, relay):
    """(the answer, provider ms) of a streamed chat call: its error before the first byte,
    or the SSE response `relay()` builds for it (the async relay, or the WSGI one)."""
    request.llm_admission = stream.admission
    if stream.error is not None:
        return provider_error_response(stream.error), provider_ms
    response = relay()  # over the attempt that streams (after any fallback): stream.model
    response["Cache-Control"] = "no-cache"
    response["x-switchyard-provider"] = stream.provider
    response["X-Accel-Buffering"] = "no"  # nginx in front must not hold the chunks back
    _server_timing(response, started, provider_ms)
    return response, provider_ms


def rate_limit_headers(request, response) -> None:
    """`x-ratelimit-*` on every answer of a tenant with request or token limits (SPEC §14)."""
    tenant_id = getattr(request, "llm_tenant_id", None)
    if tenant_id is None:
        return
    admission = getattr(request, "llm_admission", None)
    if admission is not None and admission.counters is not None:
        headers = admission.headers()
    else:
        headers = limits.headers_for_tenant(tenant_id)
    for name, value in headers.items():
        response[name] = value


@csrf_exempt
async def models(request):
    if _under_wsgi(request):
        from .views_wsgi import models_wsgi

        return await sync_to_async(models_wsgi)(request)
    started = time.perf_counter()
    if request.method != "GET":
        response = _method_not_allowed("GET")
    else:
        tenant_id, response = await _authenticate(request)
        if response is None:
            try:
                data = await wire.amodel_list(tenant_id)
            except DatabaseError as exc:
                data, response = None, _database_unavailable(exc)
            if response is None:
                body = {"object": "list", "data": data}
                response = HttpResponse(json.dumps(body), content_type=JSON)
                request.llm_tenant_id = tenant_id
                if limits.needs_headers(tenant_id):
                    await run_db(rate_limit_headers, request, response)
    _server_timing(response, started, None)
    return response


@csrf_exempt
async def model_detail(request, model_id):
    """`GET /v1/models/{id}` (the SDKs' models.retrieve): a model the tenant can call."""
    started = time.perf_counter()
    if request.method != "GET":
        response = _method_not_allowed("GET")
    else:
        tenant_id, response = await _authenticate(request)
        if response is None:
            response = await _model_detail(tenant_id, model_id)
    _server_timing(response, started, None)
    return response


async def _model_detail(tenant_id, model_id) -> HttpResponse:
    try:
        found = [m for m in await wire.amodel_list(tenant_id) if m["id"] == model_id]
    except DatabaseError as exc:
        return _database_unavailable(exc)
    if found:
        return HttpResponse(json.dumps(found[0]), content_type=JSON)
    return error_response(
        404,
        f"The model {model_id!r} is not one this tenant can call.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


@csrf_exempt
def not_found(request, path=""):
    """Every /v1 path that is not served: OpenAI's 404 shape, so SDKs show a real error."""
    return error_response(
        404,
        f"Unknown path {request.path!r}: /v1 serves chat/completions, embeddings, models, "
        "messages and messages/count_tokens.",
        "invalid_request_error",
        "unknown_url",
    )
