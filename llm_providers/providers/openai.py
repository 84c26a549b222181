"""OpenAI's chat completions API, and the OpenAI-compatible base Groq and local servers share."""

import json
from typing import Any

from ..errors import ErrorType, ProviderError
from .base import (
    BadResponse,
    ChatReply,
    EmbeddingReply,
    HttpRequestSpec,
    Message,
    ProviderAdapter,
    SSEEvent,
    StreamDelta,
    StreamState,
    TokenUsage,
    ToolCallDelta,
    UnsupportedFeature,
    as_int,
    merged_headers,
)

# Body fields the caller may not set through `extra`: we own them.
RESERVED_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})


class OpenAICompatibleAdapter(ProviderAdapter):
    """`POST {base}/chat/completions` with Bearer auth and OpenAI-shaped replies."""

    max_tokens_field = "max_tokens"
    supports_embeddings = True
    # Presets of this adapter (presets.py) change these rather than copying code.
    auth_header = "Authorization"
    auth_prefix = "Bearer "
    send_stream_options = True  # stream_options.include_usage (usage in the last chunk)
    renamed_fields: dict[str, str] = {}  # OpenAI's body field → the provider's name for it
    embedding_dimensions_field = "dimensions"

    @property
    def auth_header_names(self) -> tuple[str, ...]:  # type: ignore[override]
        # The header that carries the key: a config's metadata.headers may never set it.
        return (self.auth_header,)

    def auth_headers(self, api_key, extra=None, *, json_body=True):
        own = {"Accept": "application/json"}
        if json_body:
            own["Content-Type"] = "application/json"
        if api_key:
            own[self.auth_header] = f"{self.auth_prefix}{api_key}"
        return merged_headers(extra, own, self.auth_header_names)

    def build_chat_request(
        self,
        *,
        base_url,
        api_key,
        model,
        messages,
        max_tokens=None,
        temperature=None,
        extra=None,
        headers=None,
        stream=False,
    ) -> HttpRequestSpec:
        if not self.supports_images:
            refuse_images(messages, self.label)
        body: dict[str, Any] = {"model": model, "messages": [self.message(m) for m in messages]}
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if extra:
            body.update({k: v for k, v in extra.items() if k not in RESERVED_FIELDS})
        for ours, theirs in self.renamed_fields.items():
            if ours in body:
                value = body.pop(ours)
                body.setdefault(theirs, value)
        if stream:
            body["stream"] = True
            if self.send_stream_options:
                body["stream_options"] = {"include_usage": True}
        return HttpRequestSpec(
            "POST",
            f"{base_url}/chat/completions",
            self.auth_headers(api_key, headers, json_body=True),
            json=body,
            stream=stream,
        )

    def message(self, message: Message) -> dict:
        return dict(message)

    def parse_usage(self, usage: Any) -> TokenUsage | None:
        if not isinstance(usage, dict):
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return TokenUsage(
            prompt_tokens=as_int(usage.get("prompt_tokens")),
            completion_tokens=as_int(usage.get("completion_tokens")),
            total_tokens=as_int(usage.get("total_tokens")),
            cached_prompt_tokens=as_int(
                prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
            ),
            reasoning_tokens=as_int(
                completion_details.get("reasoning_tokens")
                if isinstance(completion_details, dict)
                else 0
            ),
        )

    def parse_chat_response(self, data, headers=None) -> ChatReply:
        if not isinstance(data, dict):
            raise BadResponse("The reply is not a JSON object.")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadResponse("The reply has no choices.")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise BadResponse("The reply's first choice has no message.")
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        if content is None:
            if message.get("tool_calls") or message.get("function_call"):
                content = ""  # the gateway passes tool calls on from `raw`
            elif isinstance(message.get("refusal"), str):
                content = message["refusal"]
            else:
                raise BadResponse("The reply's message has no content.")
        if not isinstance(content, str):
            raise BadResponse("The reply's content is not text.")
        finish = choice.get("finish_reason")
        tool_calls = [
            normalised_tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)
        ]
        return ChatReply(
            content=content,
            finish_reason=finish,
            provider_finish_reason=finish,
            usage=self.parse_usage(data.get("usage")),
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            request_id=self.request_id(headers) or _str_or_none(data.get("id")),
            raw=data,
            tool_calls=tool_calls,
        )

    def parse_stream_event(self, event: SSEEvent, state: StreamState) -> StreamDelta | None:
        if event.error is not None:  # the parser hit a bound (iter_sse)
            return StreamDelta(error=event.error)
        payload = event.data.strip()
        if payload == "[DONE]":
            return StreamDelta(done=True, usage=state.usage, finish_reason=state.finish_reason)
        if not payload:
            return None
        try:
            chunk = json.loads(payload)
        except ValueError:
            return StreamDelta(
                error=ProviderError(
                    ErrorType.BAD_RESPONSE, f"{self.label}: a stream event is not JSON."
                )
            )
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk and chunk["error"]:
            return StreamDelta(error=self.stream_error(chunk["error"]))
        delta = StreamDelta(
            model=chunk.get("model") if isinstance(chunk.get("model"), str) else None
        )
        if delta.model:
            state.model = delta.model
        usage = self.parse_usage(chunk.get("usage")) or self.parse_usage(
            (chunk.get("x_groq") or {}).get("usage")
            if isinstance(chunk.get("x_groq"), dict)
            else None
        )
        if usage is not None:
            state.usage = delta.usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            piece = choice.get("delta") or {}
            if isinstance(piece, dict) and isinstance(piece.get("content"), str):
                delta.text = piece["content"]
            if isinstance(piece, dict) and isinstance(piece.get("tool_calls"), list):
                delta.tool_calls = [
                    tool_call_delta(c, i)
                    for i, c in enumerate(piece["tool_calls"])
                    if isinstance(c, dict)
                ]
            if choice.get("finish_reason"):
                state.finish_reason = state.provider_finish_reason = choice["finish_reason"]
                delta.finish_reason = delta.provider_finish_reason = choice["finish_reason"]
        return delta

    def stream_error(self, error: Any) -> ProviderError:
        if isinstance(error, dict):
            upstream_type = str(error.get("type") or "")
            code = str(error.get("code") or "")
            message = str(error.get("message") or "stream error")
        else:
            upstream_type, code, message = "", "", str(error)
        error_type = self.classify(500, upstream_type, code)
        if upstream_type in ("rate_limit_error", "rate_limit_exceeded"):
            error_type = ErrorType.RATE_LIMIT
        return ProviderError(error_type, f"{self.label} stream: {message}")

    # -- embeddings (POST {base}/embeddings) ---------------------------------------------
    def build_embeddings_request(
        self, *, base_url, api_key, model, inputs, dimensions=None, headers=None
    ) -> HttpRequestSpec:
        if not self.supports_embeddings:
            return super().build_embeddings_request(
                base_url=base_url, api_key=api_key, model=model, inputs=inputs
            )
        # Always floats from the provider: the Python API returns floats and the gateway
        # encodes base64 itself when its client asks for it.
        body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body[self.embedding_dimensions_field] = dimensions
        return HttpRequestSpec(
            "POST",
            f"{base_url}/embeddings",
            self.auth_headers(api_key, headers, json_body=True),
            json=body,
        )

    def parse_embeddings_response(self, data) -> EmbeddingReply:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise BadResponse("The embeddings reply has no `data` array.")
        items = [d for d in data["data"] if isinstance(d, dict)]
        if any(not isinstance(d.get("embedding"), list) for d in items):
            raise BadResponse("An embedding is not a list of numbers.")
        items.sort(key=lambda d: d.get("index") if isinstance(d.get("index"), int) else 0)
        vectors = [[float(x) for x in d["embedding"]] for d in items]
        return EmbeddingReply(
            vectors=vectors,
            usage=self.parse_usage(data.get("usage")),
            model=data.get("model") if isinstance(data.get("model"), str) else None,
        )


def normalised_tool_call(call: dict) -> dict:
    """An OpenAI tool call as OpenAI documents it (arguments always a string)."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # some local servers send an object
        arguments = json.dumps(arguments if arguments is not None else {})
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {"name": str(function.get("name") or ""), "arguments": arguments},
    }


def tool_call_delta(fragment: dict, position: int) -> ToolCallDelta:
    """One streamed tool-call fragment, relayed as it came (its `index` kept)."""
    function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
    index = fragment.get("index")
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ToolCallDelta(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        id=fragment.get("id") if isinstance(fragment.get("id"), str) else None,
        name=function.get("name") if isinstance(function.get("name"), str) else None,
        arguments=arguments or "",
    )


def refuse_images(messages, label: str) -> None:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "input_image") for p in content
        ):
            raise UnsupportedFeature("messages", f"{label} does not accept image parts.")


class OpenAIAdapter(OpenAICompatibleAdapter):
    name = "openai"
    label = "OpenAI"
    default_base_url = "https://api.openai.com/v1"
    base_url_setting = "OPENAI_BASE_URL"
    key_setting = "OPENAI_API_KEY"
    # `max_tokens` is deprecated by OpenAI and refused by its reasoning models;
    # `max_completion_tokens` is accepted by every chat model.
    max_tokens_field = "max_completion_tokens"

    def metadata_headers(self, metadata):
        headers = super().metadata_headers(metadata)
        metadata = metadata or {}
        if metadata.get("organization"):
            headers["OpenAI-Organization"] = str(metadata["organization"])
        if metadata.get("project"):
            headers["OpenAI-Project"] = str(metadata["project"])
        return headers


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None
