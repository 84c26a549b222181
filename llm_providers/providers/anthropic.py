"""Anthropic's messages API: x-api-key, anthropic-version, required max_tokens, top-level system."""

import json
from typing import Any

from ..errors import ErrorType, ProviderError
from . import anthropic_translate as translate
from .anthropic_translate import RESPONSE_TOOL
from .base import (
    BadResponse,
    ChatReply,
    HttpRequestSpec,
    Message,
    ProviderAdapter,
    SSEEvent,
    StreamDelta,
    StreamState,
    TokenUsage,
    ToolCallDelta,
    as_int,
    merged_headers,
)

API_VERSION = "2023-06-01"

# Anthropic's stop_reason in OpenAI's finish_reason vocabulary, so the gateway can translate.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_TYPES = {
    "invalid_request_error": ErrorType.INVALID_REQUEST,
    "request_too_large": ErrorType.INVALID_REQUEST,
    "authentication_error": ErrorType.AUTHENTICATION,
    "permission_error": ErrorType.PERMISSION,
    "not_found_error": ErrorType.NOT_FOUND,
    "billing_error": ErrorType.QUOTA_EXCEEDED,
    "rate_limit_error": ErrorType.RATE_LIMIT,
    "api_error": ErrorType.SERVER_ERROR,
    "timeout_error": ErrorType.TIMEOUT,
    "overloaded_error": ErrorType.OVERLOADED,
}

# What the body's type may turn a status-derived type into (Anthropic sends billing
# errors as 400; a 5xx may say it is an overload or a timeout).
BODY_REFINEMENTS = {
    ErrorType.INVALID_REQUEST: frozenset({ErrorType.QUOTA_EXCEEDED}),
    ErrorType.SERVER_ERROR: frozenset({ErrorType.OVERLOADED, ErrorType.TIMEOUT}),
}

# Stop reasons that legitimately come without a text block.
NO_TEXT_OK = frozenset({"tool_use", "refusal", "max_tokens", "pause_turn"})


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


class AnthropicAdapter(ProviderAdapter):
    name = "anthropic"
    label = "Anthropic"
    default_base_url = "https://api.anthropic.com/v1"
    base_url_setting = "ANTHROPIC_BASE_URL"
    key_setting = "ANTHROPIC_API_KEY"
    default_max_tokens = 4096  # Anthropic requires max_tokens; used when the caller gives none
    auth_header_names = ("x-api-key",)

    def auth_headers(self, api_key, extra=None, *, json_body=True):
        own = {"Accept": "application/json", "anthropic-version": API_VERSION}
        if json_body:
            own["Content-Type"] = "application/json"
        if api_key:
            own["x-api-key"] = api_key
        return merged_headers(extra, own, self.auth_header_names)

    def metadata_headers(self, metadata):
        headers = super().metadata_headers(metadata)
        beta = (metadata or {}).get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(map(str, beta))
        return headers

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
        system, converted = self.convert_messages(messages)
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens
            or (extra or {}).get("max_completion_tokens")
            or self.default_max_tokens,
            "messages": converted,
        }
        if system:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = temperature
        body.update(self.convert_extra(extra or {}))
        if stream:
            body["stream"] = True  # Anthropic streams always report usage
        return HttpRequestSpec(
            "POST",
            f"{base_url}/messages",
            self.auth_headers(api_key, headers, json_body=True),
            json=body,
            stream=stream,
        )

    def convert_messages(self, messages: list[Message]) -> tuple[str, list[dict]]:
        """OpenAI-style messages → (top-level system text, Anthropic messages)."""
        return translate.convert_messages(messages)

    def convert_extra(self, extra: dict) -> dict:
        """The OpenAI body fields, translated; UnsupportedFeature for what has no equivalent."""
        return translate.convert_extra(extra)

    def parse_usage(self, usage: Any) -> TokenUsage | None:
        if not isinstance(usage, dict):
            return None
        cache_read = as_int(usage.get("cache_read_input_tokens"))
        cache_write = as_int(usage.get("cache_creation_input_tokens"))
        # input_tokens excludes the cached parts; prompt_tokens counts every input token.
        return TokenUsage(
            prompt_tokens=as_int(usage.get("input_tokens")) + cache_read + cache_write,
            completion_tokens=as_int(usage.get("output_tokens")),
            cached_prompt_tokens=cache_read,
            cache_write_tokens=cache_write,
        )

    def parse_chat_response(self, data, headers=None) -> ChatReply:
        if not isinstance(data, dict):
            raise BadResponse("The reply is not a JSON object.")
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise BadResponse("The reply has no content blocks.")
        texts = [
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        stop_reason = data.get("stop_reason")
        uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        finish = finish_reason(stop_reason)
        tool_calls = []
        for block in uses:
            if block.get("name") == RESPONSE_TOOL:
                # Structured output through the forced tool: its input is the answer.
                texts = [json.dumps(block.get("input") or {}, separators=(",", ":"))]
                finish = "stop"
                continue
            tool_calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
        if not texts and stop_reason not in NO_TEXT_OK and not uses:
            raise BadResponse("The reply has no text block.")
        return ChatReply(
            content="".join(texts),
            finish_reason=finish,
            provider_finish_reason=stop_reason,
            usage=self.parse_usage(data.get("usage")),
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            request_id=self.request_id(headers) or (data.get("id") or None),
            raw=data,
            tool_calls=tool_calls,
        )

    def classify(self, status, upstream_type, code):
        # The status decides whose fault it is (a 401 is never the client's, whatever the
        # body says); the body's type only narrows it within the same kind of fault.
        by_status = super().classify(status, upstream_type, code)
        by_body = ERROR_TYPES.get(upstream_type)
        if by_body in BODY_REFINEMENTS.get(by_status, ()):
            return by_body
        return by_status

    def request_id(self, headers):
        if not headers:
            return None
        return headers.get("request-id") or headers.get("x-request-id")

    def parse_stream_event(self, event: SSEEvent, state: StreamState) -> StreamDelta | None:
        if event.error is not None:  # the parser hit a bound (iter_sse)
            return StreamDelta(error=event.error)
        try:
            data = json.loads(event.data) if event.data else {}
        except ValueError:
            return StreamDelta(
                error=ProviderError(
                    ErrorType.BAD_RESPONSE, "Anthropic: a stream event is not JSON."
                )
            )
        if not isinstance(data, dict):
            return None
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message") or {}
            state.model = message.get("model") or state.model
            state.usage = self.parse_usage(message.get("usage")) or TokenUsage()
            return StreamDelta(model=state.model, usage=state.usage)
        if kind == "content_block_start":
            return self.stream_block_start(data, state)
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                return StreamDelta(text=delta["text"])
            if delta.get("type") == "input_json_delta":
                return self.stream_tool_input(data, delta, state)
            return None
        if kind == "message_delta":
            delta = data.get("delta") or {}
            out = StreamDelta()
            if delta.get("stop_reason"):
                state.provider_finish_reason = delta["stop_reason"]
                state.finish_reason = finish_reason(delta["stop_reason"])
                if state.extra.get("structured") and not state.extra.get("tools"):
                    state.finish_reason = "stop"  # the forced tool's input was the answer
                out.finish_reason = state.finish_reason
                out.provider_finish_reason = state.provider_finish_reason
            usage = data.get("usage")
            if isinstance(usage, dict):
                state.usage = state.usage or TokenUsage()
                # Running totals: overwrite, never add.
                if "output_tokens" in usage:
                    state.usage.completion_tokens = as_int(usage["output_tokens"])
                if "input_tokens" in usage:
                    cached = state.usage.cached_prompt_tokens + state.usage.cache_write_tokens
                    state.usage.prompt_tokens = as_int(usage["input_tokens"]) + cached
                state.usage.total_tokens = state.usage.prompt_tokens + state.usage.completion_tokens
                out.usage = state.usage
            return out
        if kind == "message_stop":
            return StreamDelta(
                done=True,
                usage=state.usage,
                finish_reason=state.finish_reason,
                provider_finish_reason=state.provider_finish_reason,
            )
        if kind == "error":
            error = data.get("error") or {}
            error_type = ERROR_TYPES.get(str(error.get("type")), ErrorType.SERVER_ERROR)
            return StreamDelta(
                error=ProviderError(
                    error_type, f"Anthropic stream: {error.get('message') or 'error'}"
                )
            )
        return None  # ping, content_block_stop

    def stream_block_start(self, data: dict, state: StreamState) -> StreamDelta | None:
        """A tool_use block opens: the first fragment of one tool call.

        Anthropic numbers blocks (text ones included); OpenAI numbers tool calls. Each
        tool_use block gets the next tool-call index, so parallel calls stay apart.
        """
        block = data.get("content_block") or {}
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return None
        if block.get("name") == RESPONSE_TOOL:
            state.extra.setdefault("structured", set()).add(data.get("index"))
            return None
        tools = state.extra.setdefault("tools", {})
        index = tools[data.get("index")] = len(tools)
        return StreamDelta(
            tool_calls=[
                ToolCallDelta(
                    index=index, id=str(block.get("id") or ""), name=str(block.get("name") or "")
                )
            ]
        )

    def stream_tool_input(self, data: dict, delta: dict, state: StreamState) -> StreamDelta | None:
        partial = delta.get("partial_json")
        if not isinstance(partial, str) or not partial:
            return None
        if data.get("index") in state.extra.get("structured", ()):
            return StreamDelta(text=partial)  # structured output arrives as the text
        index = state.extra.get("tools", {}).get(data.get("index"))
        if index is None:
            return None
        return StreamDelta(tool_calls=[ToolCallDelta(index=index, arguments=partial)])
