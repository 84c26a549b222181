"""`POST /v1/embeddings` in OpenAI's shape (SPEC §13), through LLMService.aembed()
(under WSGI: embed(), the same rules and answers).

One usage row per call (`endpoint=embedding`, `metadata.via=v1`). The provider is always
asked for floats; `encoding_format: "base64"` (the openai SDK's default) is encoded here,
as OpenAI does: little-endian float32, base64.
"""

import base64
import json
import struct
import time

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .. import limits
from ..engine.aio import run_db
from ..models import Endpoint
from . import wire
from .errors import error_response, provider_error_response
from .views import (
    _authenticate,
    _database_refusal,
    _database_unavailable,
    _method_not_allowed,
    _server_timing,
    _under_wsgi,
    authenticate,
    rate_limit_headers,
)

FIELDS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})


class BadEmbeddingRequest(wire.BadRequest):
    pass


def parse(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEmbeddingRequest(
            "The request body is not valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise BadEmbeddingRequest("The request body must be a JSON object.", code="invalid_json")
    for name in data:
        if name not in FIELDS:
            raise BadEmbeddingRequest(f"Unknown field `{name}`.", name, "unsupported_parameter")
    inputs = data.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if (
        not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(i, str) and i for i in inputs)
    ):
        raise BadEmbeddingRequest(
            "`input` must be a non-empty string or array of non-empty strings "
            "(token arrays are not supported).",
            "input",
        )
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise BadEmbeddingRequest("`model` must be a non-empty string.", "model")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadEmbeddingRequest("`encoding_format` must be float or base64.", "encoding_format")
    dimensions = data.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0
    ):
        raise BadEmbeddingRequest("`dimensions` must be a positive integer.", "dimensions")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise BadEmbeddingRequest("`user` must be a string.", "user")
    return {
        "inputs": inputs,
        "model": model.strip() if model else None,
        "encoding": encoding,
        "dimensions": dimensions,
    }


def encode(vector: list[float], encoding: str):
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@csrf_exempt
async def embeddings(request):
    """Async (issue 9): waiting on the provider costs a socket, not a thread. Under WSGI
    the same answer comes from the sync engine (`embeddings_wsgi`), as for chat."""
    if _under_wsgi(request):
        return await sync_to_async(embeddings_wsgi)(request)
    started = time.perf_counter()
    provider_ms = None
    tenant_id = None
    if request.method != "POST":
        response = _method_not_allowed("POST")
    else:
        tenant_id, response = await _authenticate(request)
        if response is None:
            parsed, response = parse_request(request)
        if response is None:
            try:
                service = await wire.aservice_for(tenant_id)
            except DatabaseError as exc:
                response = _database_unavailable(exc)
            else:
                result = await service.aembed(**call_args(parsed))
                request.llm_admission = result.admission
                response, provider_ms = answer(result, parsed)
        if tenant_id is not None:
            request.llm_tenant_id = tenant_id
            if limits.needs_headers(tenant_id):
                await run_db(rate_limit_headers, request, response)
    _server_timing(response, started, provider_ms)
    return response


def embeddings_wsgi(request):
    started = time.perf_counter()
    provider_ms = None
    tenant_id = None
    if request.method != "POST":
        response = _method_not_allowed("POST")
    else:
        tenant_id, response = authenticate(request)
        if response is None:
            parsed, response = parse_request(request)
        if response is None:
            try:
                service = wire.service_for(tenant_id)
            except DatabaseError as exc:
                response = _database_unavailable(exc)
            else:
                result = service.embed(**call_args(parsed))
                request.llm_admission = result.admission
                response, provider_ms = answer(result, parsed)
        if tenant_id is not None:
            request.llm_tenant_id = tenant_id
            rate_limit_headers(request, response)
    _server_timing(response, started, provider_ms)
    return response


# -- shared by the async view and its WSGI twin ------------------------------------------
def parse_request(request):
    """(the parsed request, None) or (None, its 4xx answer, or the 503 while usage writes
    fail: no call is made that cannot be accounted)."""
    try:
        parsed = parse(request.body)
    except RequestDataTooBig:
        return None, error_response(
            413, "The request body is too large.", "invalid_request_error", "request_too_large"
        )
    except wire.BadRequest as exc:
        return None, error_response(400, exc.message, "invalid_request_error", exc.code, exc.param)
    return parsed, _database_refusal()


def call_args(parsed) -> dict:
    return {
        "inputs": parsed["inputs"],
        "model": parsed["model"],
        "dimensions": parsed["dimensions"],
        "endpoint": Endpoint.EMBEDDING,
        "metadata": dict(wire.USAGE_METADATA),
    }


def answer(result, parsed):
    """(the response, the provider's time in ms or None)."""
    if not result.success:
        return provider_error_response(result.error), result.upstream_ms or None
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, parsed["encoding"])}
            for i, v in enumerate(result.vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    return HttpResponse(
        json.dumps(body, separators=(",", ":")), content_type="application/json"
    ), result.upstream_ms
