"""The adapter interface: turn a chat call into one provider's wire format and back.

Adapters are pure: they build request descriptions and parse bodies; they never do I/O.
`llm_providers.http` sends what they build, `LLMService` ties the two together, and the
/v1 gateway uses the streaming pieces (`build_stream_request`, `parse_stream_event`).
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from ..errors import ErrorType, ProviderError, error_type_for_status

Message = Mapping[str, Any]  # an OpenAI-style chat message: {"role", "content"}


@dataclass
class HttpRequestSpec:
    """A request to send: what an adapter builds and `llm_providers.http` sends."""

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
    extra: dict = field(default_factory=dict)


class BadResponse(Exception):
    """The provider answered 2xx with something that is not a usable reply."""


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Parse a server-sent-events byte stream into events (`event:` / `data:` lines)."""
    buffer = b""
    event: str | None = None
    data: list[str] = []
    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            end, skip = cut
            line = buffer[:end].decode("utf-8", errors="replace")
            buffer = buffer[end + skip :]
            if not line:
                if data or event:
                    yield SSEEvent(event, "\n".join(data))
                event, data = None, []
                continue
            if line.startswith(":"):
                continue  # a comment / keep-alive
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if buffer.strip():
        name, _, value = buffer.decode("utf-8", errors="replace").partition(":")
        if name == "data":
            data.append(value.lstrip(" ").rstrip("\r\n"))
    if data:
        yield SSEEvent(event, "\n".join(data))


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    for i, byte in enumerate(buffer):
        if byte == 0x0A:  # \n
            return i, 1
        if byte == 0x0D:  # \r or \r\n
            if i + 1 == len(buffer):
                return None  # wait: it may be the first half of \r\n
            return i, 2 if buffer[i + 1] == 0x0A else 1
    return None


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
    base_url_setting: str | None = None  # e.g. "OPENAI_BASE_URL"
    key_setting: str | None = None  # the environment fallback's key, e.g. "OPENAI_API_KEY"
    requires_api_key: bool = True
    # Used when the caller gives no max_tokens and the provider requires one.
    default_max_tokens: int | None = None
    # What the provider accepts beyond text chat (checked before a request is built).
    supports_images: bool = True
    supports_embeddings: bool = False

    # -- configuration -----------------------------------------------------------------
    def resolve_base_url(self, configured: str | None = None) -> str:
        """The config's base URL, else the provider's environment variable, else the default."""
        env_value = getattr(settings, self.base_url_setting, "") if self.base_url_setting else ""
        return (configured or env_value or self.default_base_url or "").rstrip("/")

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

    def request_id(self, headers: Mapping[str, str] | None) -> str | None:
        if not headers:
            return None
        return headers.get("x-request-id") or headers.get("request-id")


def merged_headers(extra: Mapping[str, str] | None, own: dict[str, str]) -> dict[str, str]:
    """A config's extra headers, with ours (auth, content type) always winning."""
    headers: dict[str, str] = {}
    if extra:
        lowered = {k.lower() for k in own}
        headers.update({k: str(v) for k, v in extra.items() if k.lower() not in lowered})
    headers.update(own)
    return headers


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"
