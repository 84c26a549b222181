"""/v1 in the OpenAPI schema (drf-spectacular post-processing hook).

The gateway's views are plain Django views (no DRF on the hot path), so spectacular does
not see them; their operations are described here, briefly and in the providers' own
terms (the request and reply bodies are OpenAI's and Anthropic's documented shapes).
"""

OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
        }
    },
}
ANY_OBJECT = {"type": "object", "additionalProperties": True}


def _operation(
    operation_id, summary, description, *, body=True, tag="v1 (OpenAI-compatible)", errors=None
):
    op = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        "security": [{"bearerAuth": []}],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": ANY_OBJECT}},
            },
            **{
                str(status): {
                    "description": text,
                    "content": {"application/json": {"schema": OPENAI_ERROR}},
                }
                for status, text in (
                    errors
                    or {
                        400: "Malformed request, or a field the tenant's provider cannot "
                        "honour (`param` names it).",
                        401: "Missing or invalid tenant key.",
                        404: "Unknown model or path.",
                        429: "The provider rate-limits.",
                        502: "The provider failed or refused the tenant's stored key.",
                        503: "No usable provider config.",
                        504: "The provider did not answer in time.",
                    }
                ).items()
            },
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ANY_OBJECT}},
        }
    return op


GATEWAY_PATHS = {
    "/v1/chat/completions": {
        "post": _operation(
            "v1_chat_completions",
            "Chat completion (OpenAI's shape)",
            "OpenAI's chat completion body: messages (text, images, tool calls and results), "
            "tools, tool_choice, parallel_tool_calls, response_format, stream. Runs through "
            "the tenant's active provider, translated where needed; `stream: true` answers "
            "with `text/event-stream` chunks ending in `data: [DONE]`.",
        )
    },
    "/v1/embeddings": {
        "post": _operation(
            "v1_embeddings",
            "Embeddings (OpenAI's shape)",
            "`input` (a string or an array of strings), `model`, `encoding_format` "
            "(float or base64), `dimensions`. 400 on providers without embeddings.",
        )
    },
    "/v1/models": {
        "get": _operation(
            "v1_models_list",
            "Models the tenant can call",
            "The active config's default model and any listed in its `metadata.models`.",
            body=False,
        )
    },
    "/v1/models/{model_id}": {
        "get": {
            **_operation(
                "v1_models_retrieve",
                "One model the tenant can call",
                "404 when not listed.",
                body=False,
            ),
            "parameters": [
                {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    },
    "/v1/messages": {
        "post": _operation(
            "v1_messages",
            "Messages (Anthropic's shape)",
            "Anthropic's messages body; key as `x-api-key` or Bearer. Passed through to "
            "Anthropic tenants (anthropic-version / anthropic-beta forwarded), translated "
            "for OpenAI-shaped ones; errors in Anthropic's shape.",
            tag="v1 (Anthropic-compatible)",
        )
    },
    "/v1/messages/count_tokens": {
        "post": _operation(
            "v1_messages_count_tokens",
            "Count tokens (Anthropic's shape)",
            "Anthropic's count_tokens; passed through to Anthropic tenants.",
            tag="v1 (Anthropic-compatible)",
        )
    },
}


def add_gateway_paths(result, generator, request, public):
    result.setdefault("paths", {}).update(GATEWAY_PATHS)
    return result
