"""The adapter interface: turn a chat call into one provider's wire format and back.

Adapters are pure: they build request descriptions and parse bodies; they never do I/O.
`llm_providers.transport` sends what they build, `LLMService` ties the two together, and the
/v1 gateway uses the streaming pieces (`build_stream_request`, `parse_stream_event`).
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorType, ProviderError, error_type_for_status

Message = Mapping[str, Any]  # an OpenAI-style chat message: {"role", "content"}


@dataclass
class HttpRequestSpec:
    """A request to send: what an adapter builds and `llm_providers.transport` sends."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict | None = None
    stream: bool = False


@dataclass
class TokenUsage:
    """Token counts as the provider reported them, normalised.

    `prompt_tokens` counts every input token, cached ones included (Anthropic reports
    those separately; they are added here), so it compares across providers.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_prompt_tokens: int = 0  # read from the provider's prompt cache
    cache_write_tokens: int = 0  # written to it (Anthropic)
    reasoning_tokens: int = 0  # part of completion_tokens (OpenAI reasoning models)

    def __post_init__(self):
        if not self.total_tokens:
            self.total_tokens = self.prompt_tokens + self.completion_tokens

    def details(self) -> dict:
        """The extra counts worth keeping in a usage row's metadata (only non-zero ones)."""
        return {
            k: v
            for k, v in (
                ("cached_prompt_tokens", self.cached_prompt_tokens),
                ("cache_write_tokens", self.cache_write_tokens),
                ("reasoning_tokens", self.reasoning_tokens),
            )
            if v
        }


@dataclass
class ChatReply:
    """A parsed, successful chat reply."""

    content: str
    finish_reason: str | None  # OpenAI vocabulary: stop, length, tool_calls, content_filter
    provider_finish_reason: str | None  # as the provider said it (Anthropic: end_turn, …)
    usage: TokenUsage | None
    model: str | None = None
    request_id: str | None = None
    raw: dict = field(default_factory=dict, repr=False)
    # OpenAI's shape: [{"id", "type": "function", "function": {"name", "arguments"}}],
    # arguments a JSON string, whatever the provider's own shape.
    tool_calls: list[dict] = field(default_factory=list)


@dataclass
class ToolCallDelta:
    """A fragment of one streamed tool call, in OpenAI's terms.

    `index` is stable for one call across fragments (and distinct between parallel
    calls); `id` and `name` come with the first fragment, `arguments` are pieces of the
    JSON string to be concatenated.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def as_openai(self) -> dict:
        out: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            out["id"] = self.id
            out["type"] = "function"
        function: dict[str, Any] = {}
        if self.name is not None:
            function["name"] = self.name
        function["arguments"] = self.arguments
        out["function"] = function
        return out


@dataclass
class EmbeddingReply:
    vectors: list[list[float]]
    usage: TokenUsage | None
    model: str | None = None


class UnsupportedFeature(ValueError):
    """The request asks for something the tenant's provider cannot honour.

    Never dropped silently: the service answers an `invalid_request` error naming `param`
    (the /v1 gateway: a 400 in OpenAI's shape).
    """

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass
class SSEEvent:
    event: str | None
    data: str
    error: ProviderError | None = None  # the parser gave up (a bound); the stream ends here


@dataclass
class StreamDelta:
    """What one SSE event meant: some text, the finish reason, usage, an error, or the end."""

    text: str = ""
    finish_reason: str | None = None
    provider_finish_reason: str | None = None
    usage: TokenUsage | None = None
    error: ProviderError | None = None
    done: bool = False
    model: str | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    # The final event of LLMService.stream_chat carries the call's ChatResult here.
    result: Any = None


@dataclass
class StreamState:
    """Per-stream memory an adapter needs across events (e.g. Anthropic's input counts)."""

    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    provider_finish_reason: str | None = None
    # An adapter's own memory across events (Anthropic: which content block is which
    # tool call, so that parallel calls keep one stable index each).
    extra: dict = field(default_factory=dict)


class BadResponse(Exception):
    """The provider answered 2xx with something that is not a usable reply."""


# Bounds on what a provider may stream: one line (an event's `data:` line holds one JSON
# chunk, a few KB) and the whole stream (a long answer is a few MB; non-streamed replies
# are capped at 16 MB in http.py).
MAX_SSE_LINE_BYTES = 1024 * 1024
MAX_SSE_STREAM_BYTES = 64 * 1024 * 1024


def iter_sse(
    chunks: Iterable[bytes],
    *,
    max_line_bytes: int = MAX_SSE_LINE_BYTES,
    max_stream_bytes: int = MAX_SSE_STREAM_BYTES,
) -> Iterator[SSEEvent]:
    """Parse a server-sent-events byte stream into events (`event:` / `data:` lines).

    A sync loop over `SSEParser`, the one parser both transports feed (the async stream
    feeds it the chunks it awaits)."""
    parser = SSEParser(max_line_bytes=max_line_bytes, max_stream_bytes=max_stream_bytes)
    for chunk in chunks:
        yield from parser.feed(chunk)
        if parser.failed:
            return
    yield from parser.end()


class SSEParser:
    """Incremental SSE parsing: `feed(chunk)` → the events completed by it, `end()` → the
    last one.

    Each byte is scanned for a line end once (a long line costs linear time), and a line
    or a stream past its bound ends the parse with an event carrying a bad_response
    error (`failed` is then set), which the adapters pass on as the stream's error.
    """

    def __init__(
        self,
        *,
        max_line_bytes: int = MAX_SSE_LINE_BYTES,
        max_stream_bytes: int = MAX_SSE_STREAM_BYTES,
    ):
        self.max_line_bytes = max_line_bytes
        self.max_stream_bytes = max_stream_bytes
        self.buffer = bytearray()
        self.scanned = 0  # bytes before this hold no line end of the current line
        self.total = 0
        self.event: str | None = None
        self.data: list[str] = []
        self.failed = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk or self.failed:
            return []
        events: list[SSEEvent] = []
        self.total += len(chunk)
        if self.total > self.max_stream_bytes:
            return self._fail(f"The stream is larger than {self.max_stream_bytes} bytes.")
        buffer = self.buffer
        buffer += chunk
        pos = 0  # start of the current line in `buffer`
        scanned = self.scanned
        max_line = self.max_line_bytes
        while True:
            cut = _line_end(buffer, max(scanned, pos))
            if cut is None:
                # A lone \r at the end may be the first half of \r\n: look at it again.
                scanned = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
                break
            end, skip = cut
            if end - pos > max_line:
                break
            line = buffer[pos:end].decode("utf-8", errors="replace")
            pos = scanned = end + skip
            if not line:
                if self.data or self.event:
                    events.append(SSEEvent(self.event, "\n".join(self.data)))
                self.event, self.data = None, []
                continue
            if line.startswith(":"):
                continue  # a comment / keep-alive
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value
        if len(buffer) - pos > max_line:
            events.extend(self._fail(f"The stream sent a line longer than {max_line} bytes."))
            return events
        del buffer[:pos]  # once per chunk, not per line: no quadratic copying
        self.scanned = scanned - pos
        return events

    def end(self) -> list[SSEEvent]:
        if self.failed:
            return []
        data = self.data
        if self.buffer.strip():
            name, _, value = self.buffer.decode("utf-8", errors="replace").partition(":")
            if name == "data":
                data.append(value.lstrip(" ").rstrip("\r\n"))
        self.buffer = bytearray()
        self.data = []
        return [SSEEvent(self.event, "\n".join(data))] if data else []

    def _fail(self, message: str) -> list[SSEEvent]:
        self.failed = True
        return [_bound_error(message)]


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(index, length) of the first line end at or after `start`, None when there is none."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf != -1 else len(buffer))
    if cr == -1:
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # wait: it may be the first half of \r\n
    return cr, 2 if buffer[cr + 1] == 0x0A else 1


def _bound_error(message: str) -> SSEEvent:
    return SSEEvent(None, "", error=ProviderError(ErrorType.BAD_RESPONSE, message))


def parse_json(body: bytes | str) -> Any:
    """JSON or BadResponse (a proxy's HTML error page, a truncated body…)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadResponse(f"The reply is not JSON ({type(exc).__name__}).") from None


def as_int(value) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


class ProviderAdapter:
    """One provider's wire format. Subclasses set the class attributes and override."""

    name: str = ""
    label: str = ""
    default_base_url: str = ""
    # Names of the settings that hold the environment's base URL and key: metadata that
    # engine/resolution.py reads; adapters themselves are given base_url and api_key.
    base_url_setting: str | None = None  # e.g. "OPENAI_BASE_URL"
    key_setting: str | None = None  # the environment fallback's key, e.g. "OPENAI_API_KEY"
    requires_api_key: bool = True
    auth_header_names: tuple[str, ...] = ()  # the headers that carry the key (never a config's)
    # Whether the model list names every model the provider serves (validation checks the
    # default model against it); a local server may answer to any name.
    lists_every_model: bool = True
    # Used when the caller gives no max_tokens and the provider requires one.
    default_max_tokens: int | None = None
    # What the provider accepts beyond text chat (checked before a request is built).
    supports_images: bool = True
    supports_embeddings: bool = False

    # -- chat --------------------------------------------------------------------------
    def build_chat_request(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        messages: list[Message],
        max_tokens: int | None = None,
        temperature: float | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> HttpRequestSpec:
        raise NotImplementedError

    def build_stream_request(self, **kwargs) -> HttpRequestSpec:
        """Like build_chat_request, streaming, and asking for usage at the end."""
        return self.build_chat_request(stream=True, **kwargs)

    def parse_chat_response(self, data: Any, headers: Mapping[str, str] | None = None) -> ChatReply:
        """Parse a decoded 2xx body; raise BadResponse when there is no usable reply."""
        raise NotImplementedError

    def parse_stream_event(self, event: SSEEvent, state: StreamState) -> StreamDelta | None:
        """Interpret one SSE event; None for events that carry nothing (pings)."""
        raise NotImplementedError

    # -- embeddings --------------------------------------------------------------------
    def build_embeddings_request(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        inputs: list[str],
        dimensions: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpRequestSpec:
        raise UnsupportedFeature("input", f"{self.label} offers no embeddings API.")

    def parse_embeddings_response(self, data: Any) -> EmbeddingReply:
        raise NotImplementedError

    # -- errors ------------------------------------------------------------------------
    def map_error(
        self, status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """The normalised error for a non-2xx reply."""
        upstream_type, code, message = self.error_details(body)
        error_type = self.classify(status, upstream_type, code)
        text = message or _reason(status)
        return ProviderError(error_type, f"{self.label} {status}: {text}", status_code=status)

    def error_details(self, body: bytes | str | None) -> tuple[str, str, str]:
        """(type, code, message) from the provider's error body, empty strings when absent."""
        try:
            data = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return "", "", ""
        error = data.get("error", data)
        if isinstance(error, str):
            return "", "", error
        if not isinstance(error, dict):
            return "", "", ""
        return (
            str(error.get("type") or ""),
            str(error.get("code") or ""),
            str(error.get("message") or ""),
        )

    def classify(self, status: int, upstream_type: str, code: str) -> ErrorType:
        if "insufficient_quota" in (upstream_type, code):
            return ErrorType.QUOTA_EXCEEDED
        return error_type_for_status(status)

    # -- models list (the free key check) ----------------------------------------------
    def build_models_request(
        self, *, base_url: str, api_key: str | None, headers: Mapping[str, str] | None = None
    ) -> HttpRequestSpec:
        return HttpRequestSpec(
            "GET", f"{base_url}/models", self.auth_headers(api_key, headers, json_body=False)
        )

    def parse_models_response(self, data: Any) -> list[str]:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise BadResponse("The model list has no `data` array.")
        return [str(m.get("id")) for m in data["data"] if isinstance(m, dict) and m.get("id")]

    # -- helpers -----------------------------------------------------------------------
    def auth_headers(
        self,
        api_key: str | None,
        extra: Mapping[str, str] | None = None,
        *,
        json_body: bool = True,
    ) -> dict[str, str]:
        raise NotImplementedError

    def metadata_headers(self, metadata: Mapping[str, Any] | None) -> dict[str, str]:
        """Headers a config asks for in `metadata["headers"]` (subclasses add their own)."""
        headers = (metadata or {}).get("headers") or {}
        return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}

    def request_id(self, headers: Mapping[str, str] | None) -> str | None:
        if not headers:
            return None
        return headers.get("x-request-id") or headers.get("request-id")


# Headers a config's `metadata.headers` may never set: the message framing and hop-by-hop
# headers (a request-smuggling primitive: Content-Length and Transfer-Encoding together),
# Host (a name-based virtual host on an allowed address) and what proxies add or read.
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "forwarded",
        "via",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
    }
)
FORBIDDEN_HEADER_PREFIXES = ("proxy-", "x-forwarded-")
HEADER_NAME_RE = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}\Z")  # RFC 9110 token
MAX_HEADER_VALUE_LENGTH = 4096


def header_problem(name: str, auth_headers: Iterable[str] = ()) -> str | None:
    """Why a config may not send header `name` (None when it may)."""
    if not HEADER_NAME_RE.match(name):
        return f"{name!r} is not a valid header name."
    lowered = name.lower()
    if lowered in FORBIDDEN_HEADERS or lowered.startswith(FORBIDDEN_HEADER_PREFIXES):
        return f"{name} is a framing, hop-by-hop or proxy header, which a config cannot set."
    if lowered in {h.lower() for h in auth_headers}:
        return f"{name} carries the API key: set `api_key` instead (it is stored encrypted)."
    return None


def merged_headers(
    extra: Mapping[str, str] | None, own: dict[str, str], auth_headers: Iterable[str] = ()
) -> dict[str, str]:
    """A config's extra headers, with ours (auth, content type) always winning.

    Headers `header_problem` refuses are dropped here too (rows saved before the rule),
    and so are the adapter's auth headers even when no key is set.
    """
    headers: dict[str, str] = {}
    if extra:
        lowered = {k.lower() for k in own}
        headers.update(
            {
                k: str(v)
                for k, v in extra.items()
                if k.lower() not in lowered and header_problem(str(k), auth_headers) is None
            }
        )
    headers.update(own)
    return headers


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"
