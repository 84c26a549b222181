"""/v1 under WSGI: the sync engine behind the same answers (the async views hand over).

A WSGI server (the test suite's live server, or a deployment still on gunicorn) runs an
async view in an event loop made for that request alone, and iterates the response after
it is gone: an aiohttp stream cannot be read there, and a pooled client would live one
request. So under WSGI the views run this sync code, with the sync transport: the same
rules (attempts.py), answers and usage rows, on a thread per request as before.
"""

import json
import time

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import AuthenticationFailed

from . import cache, wire
from .errors import error_response, provider_error_response
from .views import (
    JSON,
    _database_refusal,
    _database_unavailable,
    _method_not_allowed,
    _server_timing,
    _unauthorized,
)


def _authenticate_wsgi(request):
    """(tenant_id, None) or (None, a 401 answer)."""
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
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


def chat_completions_wsgi(request):
    started = time.perf_counter()
    response, provider_ms = _chat_completions_wsgi(request, started)
    if "Server-Timing" not in response:
        _server_timing(response, started, provider_ms)
    return response


def _chat_completions_wsgi(request, started):
    if request.method != "POST":
        return _method_not_allowed("POST"), None
    tenant_id, denied = _authenticate_wsgi(request)
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

    refused = _database_refusal()
    if refused is not None:
        return refused, None
    try:
        service = wire.service_for(tenant_id)
    except DatabaseError as exc:
        return _database_unavailable(exc), None
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


def models_wsgi(request):
    started = time.perf_counter()
    if request.method != "GET":
        response = _method_not_allowed("GET")
    else:
        tenant_id, response = _authenticate_wsgi(request)
        if response is None:
            body = {"object": "list", "data": wire.model_list(tenant_id)}
            response = HttpResponse(json.dumps(body), content_type=JSON)
    _server_timing(response, started, None)
    return response
