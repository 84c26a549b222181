"""Anthropic's messages API ↔ OpenAI's chat shapes, for `/v1/messages` on OpenAI-shaped
tenants: the request in, the reply and the stream's events out (Anthropic's order:
message_start, then per block content_block_start / _delta / _stop, message_delta,
message_stop).

Every request field is translated or refused with an error naming it. `cache_control`
marks are accepted and not sent: OpenAI-shaped providers cache prompts by themselves.
"""

import json
import uuid
from typing import Any

from .wire import BadRequest

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "function_call": "tool_use",
}
FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)


def to_openai(data: Any) -> dict:
    """An Anthropic messages body → {messages, model, max_tokens, temperature, extra, stream}."""
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    for name in data:
        if name not in FIELDS:
            raise BadRequest(f"`{name}` cannot be honoured by this tenant's provider.", name)
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise BadRequest("`max_tokens` must be a positive integer.", "max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("`messages` must be a non-empty array.", "messages")
    messages: list[dict] = []
    system = data.get("system")
    if system:
        messages.append({"role": "system", "content": _system_text(system)})
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}] must have role user or assistant.", "messages")
        messages += _message(message)
    extra: dict[str, Any] = {}
    if data.get("top_p") is not None:
        extra["top_p"] = data["top_p"]
    if data.get("stop_sequences"):
        extra["stop"] = data["stop_sequences"]
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise BadRequest("`metadata` may only hold `user_id`.", "metadata")
    if metadata.get("user_id"):
        extra["user"] = str(metadata["user_id"])
    thinking = data.get("thinking")
    if thinking is not None and not (
        isinstance(thinking, dict) and thinking.get("type") == "disabled"
    ):
        raise BadRequest("`thinking` cannot be honoured by this tenant's provider.", "thinking")
    if data.get("service_tier") not in (None, "auto", "standard_only"):
        raise BadRequest("`service_tier` must be auto or standard_only.", "service_tier")
    tools = data.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise BadRequest("`tools` must be an array.", "tools")
        extra["tools"] = [_tool(t) for t in tools]
    choice = data.get("tool_choice")
    if choice is not None:
        extra.update(_tool_choice(choice))
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be a boolean.", "stream")
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 1
    ):
        raise BadRequest("`temperature` must be a number between 0 and 1.", "temperature")
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise BadRequest("`model` must be a non-empty string.", "model")
    return {
        "messages": messages,
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "extra": extra,
        "stream": stream,
    }


def _system_text(system) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" for b in system
    ):
        return "\n\n".join(str(b.get("text", "")) for b in system)
    raise BadRequest("`system` must be a string or text blocks.", "system")


def _message(message: dict) -> list[dict]:
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest("A message's content must be a string or blocks.", "messages")
    parts: list[dict] = []
    tool_results: list[dict] = []
    tool_calls: list[dict] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and role == "user":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        elif kind == "tool_use" and role == "assistant":
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
        elif kind == "tool_result" and role == "user":
            tool_results.append(_tool_result(block))
        else:
            raise BadRequest(
                f"A {kind!r} block in a {role} message cannot be honoured by this tenant's "
                "provider.",
                "messages",
            )
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        elif not text:
            out["content"] = ""
        return [out]
    # Tool results first (they answer the previous turn), then the rest of the user turn.
    return tool_results + ([{"role": "user", "content": parts}] if parts else [])


def _image_url(block: dict) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise BadRequest("An image needs a base64 or url source.", "messages")


def _tool_result(block: dict) -> dict:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for item in content:
            if not isinstance(item, dict) or item.get("type") != "text":
                raise BadRequest("Tool results may hold text blocks only here.", "messages")
            texts.append(str(item.get("text", "")))
        content = "\n".join(texts)
    if block.get("is_error"):
        content = f"Error: {content}"
    return {
        "role": "tool",
        "tool_call_id": str(block.get("tool_use_id") or ""),
        "content": "" if content is None else str(content),
    }


def _tool(tool: Any) -> dict:
    if (
        not isinstance(tool, dict)
        or not isinstance(tool.get("name"), str)
        or (tool.get("type") not in (None, "custom"))
    ):
        raise BadRequest(
            "Only custom tools (name, description, input_schema) can be honoured by this "
            "tenant's provider.",
            "tools",
        )
    function: dict[str, Any] = {
        "name": tool["name"],
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = str(tool["description"])
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> dict:
    if not isinstance(choice, dict):
        raise BadRequest("`tool_choice` must be an object.", "tool_choice")
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest("`tool_choice.type` must be auto, any, none or tool.", "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


# -- replies ----------------------------------------------------------------------------
def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage(result) -> dict:
    cache_read = getattr(result, "cache_read_tokens", 0)
    cache_write = getattr(result, "cache_write_tokens", 0)
    return {
        # Anthropic's input_tokens exclude the cached parts.
        "input_tokens": max(result.prompt_tokens - cache_read - cache_write, 0),
        "output_tokens": result.completion_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def message_body(result, model: str) -> dict:
    content: list[dict] = []
    if result.content:
        content.append({"type": "text", "text": result.content})
    for call in getattr(result, "tool_calls", []):
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _arguments(call.arguments),
            }
        )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": result.model or model,
        "content": content,
        "stop_reason": STOP_REASONS.get(result.finish_reason or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(result),
    }


def _arguments(arguments: str) -> dict:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def sse(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


class StreamTranslator:
    """OpenAI-shaped stream events (ChatStream's) → Anthropic's event sequence."""

    def __init__(self, model: str):
        self.model = model
        self.block = -1  # Anthropic's index of the open block
        self.open_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool index → Anthropic block index

    def start(self) -> bytes:
        return sse(
            "message_start",
            {
                "message": {
                    "id": message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }
            },
        )

    def _close(self) -> bytes:
        if self.open_kind is None:
            return b""
        self.open_kind = None
        return sse("content_block_stop", {"index": self.block})

    def _open(self, kind: str, block: dict) -> bytes:
        out = self._close()
        self.block += 1
        self.open_kind = kind
        return out + sse("content_block_start", {"index": self.block, "content_block": block})

    def delta(self, delta) -> bytes:
        out = b""
        if delta.text:
            if self.open_kind != "text":
                out += self._open("text", {"type": "text", "text": ""})
            out += sse(
                "content_block_delta",
                {"index": self.block, "delta": {"type": "text_delta", "text": delta.text}},
            )
        for fragment in delta.tool_calls:
            if fragment.index not in self.tool_blocks or fragment.id:
                if fragment.index not in self.tool_blocks:
                    out += self._open(
                        "tool",
                        {
                            "type": "tool_use",
                            "id": fragment.id or "",
                            "name": fragment.name or "",
                            "input": {},
                        },
                    )
                    self.tool_blocks[fragment.index] = self.block
            if fragment.arguments:
                out += sse(
                    "content_block_delta",
                    {
                        "index": self.tool_blocks[fragment.index],
                        "delta": {"type": "input_json_delta", "partial_json": fragment.arguments},
                    },
                )
        return out

    def finish(self, result) -> bytes:
        return (
            self._close()
            + sse(
                "message_delta",
                {
                    "delta": {
                        "stop_reason": STOP_REASONS.get(result.finish_reason or "stop", "end_turn"),
                        "stop_sequence": None,
                    },
                    "usage": usage(result),
                },
            )
            + sse("message_stop", {})
        )
