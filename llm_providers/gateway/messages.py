"""Anthropic-compatible `POST /v1/messages` and `/v1/messages/count_tokens` (SPEC §13).

The tenant key comes as `x-api-key` (the Anthropic SDK's way) or `Authorization: Bearer`.
- Anthropic tenants: passed through (engine/passthrough.py): the body as written, the
  client's anthropic-version / anthropic-beta, the reply or the stream's bytes unchanged
  (the stream relayed event by event, never buffered whole).
- OpenAI-shaped tenants: translated (anthropic_shapes.py) into a chat call and back,
  streams as Anthropic's events in Anthropic's order. count_tokens has no OpenAI
  equivalent: a clear 400 there, never an estimate.
Errors are Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`; as on
the rest of /v1, the provider refusing the tenant's stored key is a 502, not a 401.
Every call writes its usage row (`metadata.via = "v1/messages"`).
"""

import json
import math
import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from ..engine.passthrough import passthrough
from ..errors import ErrorType, ProviderError
from ..models import Endpoint, Provider
from . import anthropic_shapes as shapes
from . import cache, wire

USAGE_METADATA = {"via": "v1/messages"}
# ProviderError.type → (status, Anthropic error type)
ERRORS = {
    ErrorType.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorType.NOT_FOUND: (404, "not_found_error"),
    ErrorType.RATE_LIMIT: (429, "rate_limit_error"),
    ErrorType.QUOTA_EXCEEDED: (429, "billing_error"),
    ErrorType.TIMEOUT: (504, "timeout_error"),
    ErrorType.OVERLOADED: (529, "overloaded_error"),
    ErrorType.CONFIGURATION: (503, "api_error"),
}


def error_body(type_: str, message: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def error_response(status: int, type_: str, message: str) -> HttpResponse:
    return HttpResponse(
        json.dumps(error_body(type_, message)), status=status, content_type="application/json"
    )


def provider_error(error: ProviderError) -> HttpResponse:
    status, type_ = ERRORS.get(error.type, (502, "api_error"))
    response = error_response(status, type_, error.message)
    if status in (429, 529):
        wait = error.retry_after if error.retry_after is not None else 1
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def _authenticate(request):
    key = request.META.get("HTTP_X_API_KEY", "").strip()
    if not key:
        scheme, _, bearer = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return None, error_response(
            401, "authentication_error", "No API key: send `x-api-key: <tenant API key>`."
        )
    try:
        return cache.authenticate_key(key).tenant_id, None
    except AuthenticationFailed as exc:
        return None, error_response(401, "authentication_error", str(exc.detail))


def _client_headers(request) -> dict:
    return {
        name: request.META.get("HTTP_" + name.upper().replace("-", "_"), "")
        for name in ("anthropic-version", "anthropic-beta")
    }


def _entry(request, count_tokens: bool):
    if request.method != "POST":
        response = error_response(405, "invalid_request_error", "Method not allowed; use POST.")
        response["Allow"] = "POST"
        return response
    tenant_id, denied = _authenticate(request)
    if denied is not None:
        return denied
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:
        return error_response(413, "request_too_large", "The request body is too large.")
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(data, dict):
        return error_response(400, "invalid_request_error", "The body must be a JSON object.")
    service = wire.service_for(tenant_id)
    resolved = service.resolve()
    if resolved.usable and resolved.provider == Provider.ANTHROPIC:
        return _passthrough(request, service, data, count_tokens)
    if not resolved.usable:
        return provider_error(resolved.error)
    if count_tokens:
        return error_response(
            400,
            "invalid_request_error",
            f"count_tokens is not available: this tenant's provider ({resolved.provider}) "
            "has no token-counting API.",
        )
    return _translated(service, data)


@csrf_exempt
def messages(request):
    started = time.perf_counter()
    response = _entry(request, count_tokens=False)
    response["Server-Timing"] = f"total;dur={(time.perf_counter() - started) * 1000:.3f}"
    return response


@csrf_exempt
def count_tokens(request):
    return _entry(request, count_tokens=True)


def _passthrough(request, service, data, count_tokens: bool):
    stream = bool(data.get("stream")) and not count_tokens
    reply = passthrough(
        service,
        "messages/count_tokens" if count_tokens else "messages",
        data,
        _client_headers(request),
        stream=stream,
        endpoint=Endpoint.COUNT_TOKENS if count_tokens else Endpoint.CHAT,
        metadata=dict(USAGE_METADATA),
    )
    if stream:
        if reply.error is not None:
            reply.close()
            return provider_error(reply.error)
        response = StreamingHttpResponse(reply, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    if reply.body is None:
        return provider_error(reply.result.error)
    return HttpResponse(reply.body, status=reply.status or 200, content_type="application/json")


def _translated(service, data):
    try:
        request = shapes.to_openai(data)
    except wire.BadRequest as exc:
        return error_response(400, "invalid_request_error", exc.message)
    kwargs = dict(
        max_tokens=request["max_tokens"],
        model=request["model"],
        temperature=request["temperature"],
        endpoint=Endpoint.CHAT,
        metadata=dict(USAGE_METADATA),
        extra=request["extra"],
    )
    model = request["model"] or service.resolve().model
    try:
        if request["stream"]:
            stream = service.stream_chat(request["messages"], **kwargs)
        else:
            result = service.chat(request["messages"], **kwargs)
    except ValueError as exc:
        return error_response(400, "invalid_request_error", str(exc))
    if not request["stream"]:
        if not result.success:
            return provider_error(result.error)
        return HttpResponse(
            json.dumps(shapes.message_body(result, model)), content_type="application/json"
        )
    if stream.error is not None:
        return provider_error(stream.error)
    response = StreamingHttpResponse(_events(stream, model), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _events(stream, model):
    translator = shapes.StreamTranslator(model)
    try:
        yield translator.start()
        error = None
        for delta in stream:
            if delta.error is not None:
                error = delta.error
                continue
            if delta.result is None:
                chunk = translator.delta(delta)
                if chunk:
                    yield chunk
        stream.close()
        if error is not None:
            _, type_ = ERRORS.get(error.type, (502, "api_error"))
            yield shapes.sse("error", {"error": {"type": type_, "message": error.message}})
        else:
            yield translator.finish(stream.result)
    finally:
        stream.close()
