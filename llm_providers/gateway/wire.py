"""The /v1 gateway's logic: read an OpenAI chat request, run it, answer in OpenAI's shape.

Requests run through `LLMService` (so every call writes its usage row, `endpoint=chat`),
with the tenant's active config taken from the in-process cache (`cache.py`).
"""

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..engine.aio import run_db
from ..engine.results import CompletionResult
from ..engine.service import LLMService
from ..engine.streaming import AsyncChatStream, ChatStream
from ..errors import ErrorType, ProviderError
from ..models import Endpoint, Provider
from . import cache
from .errors import stream_error_event

# Body fields the gateway reads itself; every other field is passed on as `extra`, where
# the provider's adapter keeps what it has an equivalent for.
OWN_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "temperature", "stream", "stream_options", "n"}
)
USAGE_METADATA = {"via": "v1"}
logger = logging.getLogger(__name__)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(Exception):
    """The client's request is malformed: a 400 naming the offending field."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass
class ChatRequest:
    messages: list
    model: str | None = None
    max_tokens: int | None = None
    # OpenAI's newer name; passed on as it is (in `extra`) except to Anthropic, which
    # gets it as its max_tokens.
    max_completion_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate an OpenAI chat completion body; BadRequest for anything malformed."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    except RecursionError:  # nesting deeper than the interpreter's stack
        raise BadRequest("The request body is nested too deeply.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")

    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty array.", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a `role`.", "messages")
        if CONTROL_CHARACTERS.search(message["role"]):
            raise BadRequest(f"messages[{i}].role must not contain control characters.", "messages")
    # Messages are stored with the usage row when prompt logging is on: PostgreSQL text
    # and jsonb cannot hold NUL (newlines and tabs in content are fine).
    if _has_nul(messages):
        raise BadRequest("`messages` must not contain NUL characters.", "messages")

    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise BadRequest("`model` must be a non-empty string.", "model")
    if model is not None and CONTROL_CHARACTERS.search(model):
        # Stored in the usage row's model column (a NUL failed the write on PostgreSQL).
        raise BadRequest("`model` must not contain control characters.", "model")

    max_tokens = _positive_int(data, "max_tokens")
    max_completion_tokens = _positive_int(data, "max_completion_tokens")

    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise BadRequest("`temperature` must be a number between 0 and 2.", "temperature")

    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be a boolean.", "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("`stream_options` must be an object.", "stream_options")

    n = data.get("n")
    if n is not None and n != 1:
        raise BadRequest("Only one choice per request is supported (`n` must be 1).", "n")

    extra = {k: v for k, v in data.items() if k not in OWN_FIELDS}
    return ChatRequest(
        messages=messages,
        model=model.strip() if model else None,
        max_tokens=max_tokens,
        max_completion_tokens=max_completion_tokens,
        temperature=temperature,
        stream=stream,
        include_usage=bool(options and options.get("include_usage")),
        extra=extra,
    )


def _has_nul(value) -> bool:
    """Whether any string (key or value) in a decoded JSON value holds a NUL; iterative, so
    that the deepest structure json.loads accepts cannot exhaust the stack here."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _positive_int(data: dict, name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"`{name}` must be a positive integer.", name)
    return value


def service_for(tenant_id: str) -> LLMService:
    """An LLMService on the tenant's (cached) resolution: its config or the fallback."""
    return LLMService(tenant_id, resolved=cache.resolved_config(tenant_id))


async def aservice_for(tenant_id: str) -> LLMService:
    """`service_for` without blocking the loop: a warm cache touches no database."""
    resolved = cache.cached_config(tenant_id)
    if resolved is None:
        resolved = await run_db(cache.resolved_config, tenant_id)
    return LLMService(tenant_id, resolved=resolved)


def _max_tokens(service: LLMService, chat: ChatRequest) -> int | None:
    if chat.max_tokens is None and service.resolve().provider == Provider.ANTHROPIC:
        return chat.max_completion_tokens
    return chat.max_tokens


def run_chat(service: LLMService, chat: ChatRequest) -> CompletionResult:
    """A non-streamed completion; ValueError for what the service refuses as malformed."""
    return service.chat(
        chat.messages,
        max_tokens=_max_tokens(service, chat),
        model=chat.model,
        temperature=chat.temperature,
        endpoint=Endpoint.CHAT,
        metadata=dict(USAGE_METADATA),
        extra=chat.extra,
    )


def start_stream(service: LLMService, chat: ChatRequest) -> ChatStream:
    return service.stream_chat(**_call_args(service, chat))


async def arun_chat(service: LLMService, chat: ChatRequest) -> CompletionResult:
    """`run_chat` on the async path (cancelled with its task: the provider call stops)."""
    return await service.achat(**_call_args(service, chat))


async def astart_stream(service: LLMService, chat: ChatRequest) -> AsyncChatStream:
    return await service.astream_chat(**_call_args(service, chat))


def _call_args(service: LLMService, chat: ChatRequest) -> dict:
    return {
        "messages": chat.messages,
        "max_tokens": _max_tokens(service, chat),
        "model": chat.model,
        "temperature": chat.temperature,
        "endpoint": Endpoint.CHAT,
        "metadata": dict(USAGE_METADATA),
        "extra": chat.extra,
    }


# -- answers ---------------------------------------------------------------------------
def completion_body(result: CompletionResult) -> dict:
    """OpenAI's chat.completion object for a successful result.

    OpenAI-shaped providers' replies are passed on as they came (tool calls, logprobs and
    every other field intact); Anthropic's are translated.
    """
    raw = result.raw if isinstance(result.raw, dict) else {}
    if result.provider != Provider.ANTHROPIC and isinstance(raw.get("choices"), list):
        return raw
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    tool_calls = getattr(result, "tool_calls", None)
    if tool_calls:
        message["content"] = result.content or None
        message["tool_calls"] = [c.as_openai() for c in tool_calls]
    return {
        "id": _completion_id(raw.get("id") or result.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": raw.get("model") or result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.finish_reason or "stop",
            }
        ],
        "usage": usage_body(result),
    }


def usage_body(result: CompletionResult) -> dict:
    body: dict[str, Any] = {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.tokens_used or result.prompt_tokens + result.completion_tokens,
    }
    # OpenAI's details: cached tokens are part of prompt_tokens, reasoning of completion.
    if getattr(result, "cache_read_tokens", 0) or getattr(result, "cache_write_tokens", 0):
        body["prompt_tokens_details"] = {"cached_tokens": result.cache_read_tokens}
    if getattr(result, "reasoning_tokens", 0):
        body["completion_tokens_details"] = {"reasoning_tokens": result.reasoning_tokens}
    return body


def _completion_id(upstream_id: str | None) -> str:
    if upstream_id:
        return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"
    return f"chatcmpl-{uuid.uuid4().hex}"


class _ChunkWriter:
    """OpenAI's chat.completion.chunk events of one stream (both relays write these)."""

    def __init__(self, chat: ChatRequest, model: str):
        self.chat = chat
        self.model = model
        self.chunk_id = _completion_id(None)
        self.created = int(time.time())
        self.error = None
        self.finish_reason = None
        self._text_head: tuple[str, bytes] | None = None  # (model, bytes before the text)

    def event(self, choices: list, **more) -> bytes:
        payload = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **more,
        }
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def text_event(self, text: str) -> bytes:
        """`event(choice({"content": text}))`, byte for byte, without building and
        encoding the whole chunk for every text delta (most of a stream's events): the
        bytes around the text are made once per model."""
        if self._text_head is None or self._text_head[0] != self.model:
            head = self.event(self.choice({"content": ""}))
            self._text_head = (self.model, head[: head.index(b'"content":""') + 10])
        return self._text_head[1] + json.dumps(text).encode() + _TEXT_TAIL

    @staticmethod
    def choice(delta: dict, finish_reason: str | None = None) -> list:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    def first(self) -> bytes:
        return self.event(self.choice({"role": "assistant", "content": ""}))

    def delta(self, delta) -> list[bytes]:
        out = []
        if delta.model:
            self.model = delta.model
        if delta.error is not None:
            self.error = delta.error
            return out
        if delta.text:
            out.append(self.text_event(delta.text))
        if delta.tool_calls:
            calls = [t.as_openai() for t in delta.tool_calls]
            out.append(self.event(self.choice({"tool_calls": calls})))
        if delta.finish_reason and self.finish_reason is None:
            self.finish_reason = delta.finish_reason
            out.append(self.event(self.choice({}, delta.finish_reason)))
        return out

    def last(self, result) -> list[bytes]:
        if self.error is not None:
            return [stream_error_event(self.error), DONE]
        out = []
        if self.finish_reason is None:
            # The provider ended without saying why (some local servers do).
            out.append(self.event(self.choice({}, "stop")))
        if self.chat.include_usage and result is not None:
            out.append(self.event([], usage=usage_body(result)))
        out.append(DONE)
        return out


DONE = b"data: [DONE]\n\n"
_TEXT_TAIL = b'},"logprobs":null,"finish_reason":null}]}\n\n'
USAGE_NOT_WRITTEN = ProviderError(
    ErrorType.SERVER_ERROR, "The call's usage could not be recorded; the stream is incomplete."
)


def sse_events(stream: ChatStream, chat: ChatRequest, model: str) -> Iterator[bytes]:
    """OpenAI's chat.completion.chunk events for a started stream, ending in [DONE].

    The upstream response is closed, and the usage row written, however this ends: the
    last chunk, an upstream error, or the client going away (the server then closes
    this generator, which runs the `finally`). A usage write that fails outright ends the
    stream with an error event and [DONE], never a cut connection (issue 15.5).
    """
    writer = _ChunkWriter(chat, model)
    try:
        yield writer.first()
        # The stream is read to its end (it stops by itself after the provider's last
        # event or an error) so that its usage row is written before the client sees
        # the end: whoever reads [DONE] can rely on the row being there.
        for delta in stream:
            yield from writer.delta(delta)
        try:
            stream.close()
        except Exception:
            logger.exception("usage row of a stream could not be written")
            yield stream_error_event(USAGE_NOT_WRITTEN)
            yield DONE
            return
        yield from writer.last(stream.result)
    finally:
        stream.close()


async def asse_events(
    stream: AsyncChatStream, chat: ChatRequest, model: str
) -> AsyncIterator[bytes]:
    """`sse_events` for the async stream: each delta relayed as it arrives, the row written
    before [DONE], and also when the client leaves (the view's response closes this
    generator at once, see views.RelayResponse)."""
    writer = _ChunkWriter(chat, model)
    try:
        yield writer.first()
        async for batch in stream.batches():  # what arrived together goes out together
            chunks = [chunk for delta in batch for chunk in writer.delta(delta)]
            if chunks:
                yield b"".join(chunks)
        try:
            await stream.aclose()
        except Exception:
            logger.exception("usage row of a stream could not be written")
            yield stream_error_event(USAGE_NOT_WRITTEN)
            yield DONE
            return
        for chunk in writer.last(stream.result):
            yield chunk
    finally:
        await stream.aclose()


async def amodel_list(tenant_id: str) -> list[dict]:
    resolved = cache.cached_config(tenant_id)
    if resolved is None:
        resolved = await run_db(cache.resolved_config, tenant_id)
    return _model_list(resolved)


def model_list(tenant_id: str) -> list[dict]:
    """The models the tenant can call: its active config's (or the fallback's) default
    model, then any the config lists in `metadata["models"]`.

    No provider call: this lists what the gateway routes, not the provider's catalogue
    (a request naming another model is still passed on; the provider decides).
    """
    return _model_list(cache.resolved_config(tenant_id))


def _model_list(resolved) -> list[dict]:
    config = resolved.config
    described = resolved.describe()
    if not described["available"]:
        return []
    created = int(config.created_at.timestamp()) if config is not None else 0
    names = [described["model"]]
    listed = (config.metadata or {}).get("models") if config is not None else None
    if isinstance(listed, list):
        names += [m for m in listed if isinstance(m, str) and m.strip()]
    return [
        {"id": name, "object": "model", "created": created, "owned_by": described["provider"]}
        for name in dict.fromkeys(names)
    ]
