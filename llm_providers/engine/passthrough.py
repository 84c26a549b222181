"""Anthropic's own API passed through for Anthropic tenants (`/v1/messages`, SPEC §13).

The body goes to the tenant's Anthropic config as the client wrote it (only `model`
filled in when absent), with the client's `anthropic-version` / `anthropic-beta`; the
tenant's key, the base-URL check, retries, the deadline and the usage row are the same as
for every other call. Replies and stream bytes go back unchanged; the stream is parsed on
the way through for the usage row.
"""

import time
from collections.abc import Iterator, Mapping

from ..errors import ErrorType, ProviderError
from ..models import Endpoint, Provider
from ..providers.base import BadResponse, HttpRequestSpec, TokenUsage, parse_json
from .calls import CallRecord
from .results import ChatResult
from .streaming import ChatStream

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


class PassthroughReply:
    """A non-streamed pass-through: the upstream body to relay, or the error."""

    def __init__(self, body: bytes | None, result: ChatResult, status: int | None):
        self.body, self.result, self.status = body, result, status


def passthrough(
    service,
    path: str,
    body: dict,
    client_headers: Mapping[str, str],
    *,
    stream: bool,
    endpoint: str = Endpoint.CHAT,
    metadata: dict | None = None,
):
    """Send `body` to `{base}/{path}` of the tenant's Anthropic config.

    Returns a PassthroughReply (not streamed) or a RawStream (streamed; iterate it for the
    upstream's bytes). The caller checks the provider is Anthropic first.
    """
    started = time.perf_counter()
    resolved = service.resolve()
    model = body.get("model") if isinstance(body.get("model"), str) else None
    call = CallRecord(service, resolved, body.get("messages"), model, endpoint, metadata, started)
    call.result_class = ChatResult
    if not resolved.usable:
        if stream:
            return RawStream(ChatStream(call, None, None))
        return PassthroughReply(None, call.finish(error=resolved.error), None)
    if resolved.provider != Provider.ANTHROPIC:
        raise ValueError("passthrough is for Anthropic configs only")
    adapter = resolved.adapter
    body = {**body, "model": call.model}
    headers = adapter.auth_headers(
        resolved.api_key, adapter.metadata_headers(resolved.metadata), json_body=True
    )
    for name in FORWARDED_HEADERS:
        value = client_headers.get(name)
        if value:
            headers = {k: v for k, v in headers.items() if k.lower() != name}
            headers[name] = value
    if stream:
        headers["Accept"] = "text/event-stream"
    spec = HttpRequestSpec("POST", f"{resolved.base_url}/{path}", headers, json=body, stream=stream)
    outcome = service._send(resolved, spec)
    if stream:
        return RawStream(ChatStream(call, outcome, adapter))
    call.outcome(outcome)
    if not outcome.ok:
        return PassthroughReply(None, call.finish(error=outcome.error), outcome.status_code)
    if endpoint == Endpoint.COUNT_TOKENS:
        # Free: no tokens spent, cost 0 (not "unknown").
        return PassthroughReply(outcome.body, call.finish(usage=TokenUsage()), outcome.status_code)
    try:
        reply = adapter.parse_chat_response(parse_json(outcome.body), outcome.headers)
    except BadResponse as exc:
        error = ProviderError(ErrorType.BAD_RESPONSE, f"Anthropic: {exc}", outcome.status_code)
        return PassthroughReply(None, call.finish(error=error), outcome.status_code)
    result = call.finish(
        content=reply.content,
        usage=reply.usage,
        finish_reason=reply.finish_reason,
        provider_finish_reason=reply.provider_finish_reason,
        reported_model=reply.model,
        tool_calls=reply.tool_calls,
    )
    return PassthroughReply(outcome.body, result, outcome.status_code)


class RawStream:
    """The upstream's SSE bytes, relayed event by event, parsed on the way for the row."""

    def __init__(self, stream: ChatStream):
        self.stream = stream
        self.error = stream.error
        self._pending: list[bytes] = []
        stream.tap = self._pending.append

    def __iter__(self) -> Iterator[bytes]:
        try:
            for _ in self.stream:
                if self._pending:
                    yield b"".join(self._pending)
                    self._pending.clear()
            if self._pending:
                yield b"".join(self._pending)
        finally:
            self.stream.close()

    def close(self) -> None:
        self.stream.close()
