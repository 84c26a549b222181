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
"""

import json
import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied

from tenants.authentication import bearer_key, resolve_request_tenant

from . import cache, wire
from .errors import error_response, provider_error_response

JSON = "application/json"


def _authenticate(request):
    """(tenant_id, None) or (None, a 401/403 answer).

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
        if tenant is not None:
            return tenant.pk, None
        return None, _unauthorized(
            "No API key provided: send `Authorization: Bearer <tenant API key>`."
        )
    try:
        api_key = cache.authenticate_key(key)
    except AuthenticationFailed as exc:
        return None, _unauthorized(str(exc.detail))
    return api_key.tenant_id, None


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
    parts.append(f"total;dur={total:.3f}")
    response["Server-Timing"] = ", ".join(parts)


@csrf_exempt
def chat_completions(request):
    started = time.perf_counter()
    response, provider_ms = _chat_completions(request, started)
    if "Server-Timing" not in response:
        _server_timing(response, started, provider_ms)
    return response


def _chat_completions(request, started):
    if request.method != "POST":
        return _method_not_allowed("POST"), None
    tenant_id, denied = _authenticate(request)
    if denied is not None:
        return denied, None
    try:
        chat = wire.parse_chat_request(request.body)
    except RequestDataTooBig:
        return error_response(
            413, "The request body is too large.", "invalid_request_error", "request_too_large"
        ), None
    except wire.BadRequest as exc:
        return error_response(400, exc.message, "invalid_request_error", exc.code, exc.param), None

    service = wire.service_for(tenant_id)
    try:
        if chat.stream:
            t0 = time.perf_counter()
            stream = wire.start_stream(service, chat)
            provider_ms = (time.perf_counter() - t0) * 1000
        else:
            result = wire.run_chat(service, chat)
    except ValueError as exc:  # the service's own validation: a malformed request
        return error_response(400, str(exc), "invalid_request_error", "invalid_value"), None

    if not chat.stream:
        if not result.success:
            return provider_error_response(result.error), result.upstream_ms or None
        body = json.dumps(wire.completion_body(result), separators=(",", ":"))
        return HttpResponse(body, content_type=JSON), result.upstream_ms

    if stream.error is not None:
        return provider_error_response(stream.error), provider_ms
    model = chat.model or service.resolve().model
    response = StreamingHttpResponse(
        wire.sse_events(stream, chat, model), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx in front must not hold the chunks back
    _server_timing(response, started, provider_ms)
    return response, provider_ms


@csrf_exempt
def models(request):
    started = time.perf_counter()
    if request.method != "GET":
        response = _method_not_allowed("GET")
    else:
        tenant_id, response = _authenticate(request)
        if response is None:
            body = {"object": "list", "data": wire.model_list(tenant_id)}
            response = HttpResponse(json.dumps(body), content_type=JSON)
    _server_timing(response, started, None)
    return response
