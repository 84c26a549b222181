"""/v1 under WSGI: the sync engine behind the same answers (the async views hand over).

A WSGI server (the test suite's live server, or a deployment still on gunicorn) runs an
async view in an event loop made for that request alone, and iterates the response after
it is gone: an aiohttp stream cannot be read there, and a pooled client would live one
request. So under WSGI the views run this sync code, with the sync transport: the same
rules (attempts.py), answers and usage rows, on a thread per request as before.
"""

import json
import time

from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse

from . import wire
from .errors import error_response
from .views import (
    JSON,
    SSE,
    _database_unavailable,
    _method_not_allowed,
    _server_timing,
    authenticate,
    chat_answer,
    parse_chat,
    rate_limit_headers,
    stream_answer,
)


def chat_completions_wsgi(request):
    started = time.perf_counter()
    response, provider_ms = _chat_completions_wsgi(request, started)
    rate_limit_headers(request, response)
    if "Server-Timing" not in response:
        _server_timing(response, started, provider_ms)
    return response


def _chat_completions_wsgi(request, started):
    if request.method != "POST":
        return _method_not_allowed("POST"), None
    tenant_id, denied = authenticate(request)
    if denied is not None:
        return denied, None
    request.llm_tenant_id = tenant_id
    chat, refused = parse_chat(request)
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
        return chat_answer(request, result)
    return stream_answer(
        request,
        stream,
        started,
        provider_ms,
        lambda: StreamingHttpResponse(
            wire.sse_events(stream, chat, stream.model), content_type=SSE
        ),
    )


def models_wsgi(request):
    started = time.perf_counter()
    if request.method != "GET":
        response = _method_not_allowed("GET")
    else:
        tenant_id, response = authenticate(request)
        if response is None:
            body = {"object": "list", "data": wire.model_list(tenant_id)}
            response = HttpResponse(json.dumps(body), content_type=JSON)
            request.llm_tenant_id = tenant_id
            rate_limit_headers(request, response)
    _server_timing(response, started, None)
    return response
