"""`POST /v1/embeddings` in OpenAI's shape (SPEC §13), through LLMService.embed().

One usage row per call (`endpoint=embedding`, `metadata.via=v1`). The provider is always
asked for floats; `encoding_format: "base64"` (the openai SDK's default) is encoded here,
as OpenAI does: little-endian float32, base64.
"""

import base64
import json
import struct
import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..models import Endpoint
from . import wire
from .errors import error_response, provider_error_response

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
def embeddings(request):
    from .views import _method_not_allowed, _server_timing, authenticate

    started = time.perf_counter()
    provider_ms = None
    if request.method != "POST":
        response = _method_not_allowed("POST")
    else:
        tenant_id, response = authenticate(request)
        if response is None:
            response, provider_ms = _embeddings(request, tenant_id)
    _server_timing(response, started, provider_ms)
    return response


def _embeddings(request, tenant_id):
    try:
        parsed = parse(request.body)
    except RequestDataTooBig:
        return error_response(
            413, "The request body is too large.", "invalid_request_error", "request_too_large"
        ), None
    except wire.BadRequest as exc:
        return error_response(400, exc.message, "invalid_request_error", exc.code, exc.param), None
    service = wire.service_for(tenant_id)
    result = service.embed(
        parsed["inputs"],
        model=parsed["model"],
        dimensions=parsed["dimensions"],
        endpoint=Endpoint.EMBEDDING,
        metadata=dict(wire.USAGE_METADATA),
    )
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
