"""ChatStream / AsyncChatStream: a streaming chat's deltas, and its usage row once it ended.

Both are one `_StreamRecord` (what the bytes mean, when the stream is over, what its
usage row says) fed by a different transport: `ChatStream` reads a requests response,
`AsyncChatStream` an aiohttp one. The rules live in `_StreamRecord` alone:

- One parser (`providers.base.SSEParser`) with its line and size bounds, for both.
- A time bound: LLM_STREAM_MAX_SECONDS when set, else the call's deadline (issue 15.8).
  The sync stream's socket is cut by the read watchdog at that time; the async one reads
  under `asyncio.timeout_at`.
- A stream answered with a plain JSON body (a server that ignored `stream: true`) is
  relayed as deltas of that reply, or fails as bad_response if it is not one; a stream
  that ends without a single event is never a success (issue 15.9).
- A stream closed before its end by our caller (the client left) is recorded with
  `client_disconnected`, and when the provider reported no usage, the completion tokens
  are estimated from the text relayed (`completion_tokens_estimated`, issue 15.13).
- Tool-call fragments are assembled per `index` for the row; the iterators end with one
  `done` event carrying the ChatResult (SPEC §13).
"""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator

import aiohttp
import requests

from ..errors import ErrorType, ProviderError
from ..providers.base import (
    BadResponse,
    SSEParser,
    StreamDelta,
    StreamState,
    TokenUsage,
    ToolCallDelta,
    parse_json,
)
from ..transport import watchdog
from ..transport.attempts import MAX_BODY_BYTES, stream_end
from ..transport.errors import transport_error
from .calls import CallRecord
from .results import CompletionResult

CHARS_PER_TOKEN = 4  # the usual estimate for English text when nobody counted


class _StreamRecord:
    """What a stream's bytes meant so far, and the usage row it ends with."""

    def __init__(self, call: CallRecord, outcome, adapter, *, error: ProviderError | None = None):
        self._call = call
        self._adapter = adapter
        self._response = None
        self._parts: list[str] = []
        self._tool_calls: dict[int, dict] = {}  # index → the call assembled so far
        self._state = StreamState()
        self._parser = SSEParser()
        self._json: bytearray | None = None  # the body, when the server answered JSON
        self._sniffed = False
        self._events = 0
        self._done = False
        self._ended = False
        self._stream_error: ProviderError | None = None
        self._end: float | None = None
        self._closing = False
        self.result: CompletionResult | None = None
        self.error: ProviderError | None = None
        # Called with every raw chunk from the provider (the /v1/messages pass-through).
        self.tap = None
        if error is not None:
            self.error = error  # refused before sending (a limit, a field the provider lacks)
        elif outcome is None:
            self.error = call.resolved.error
        else:
            call.outcome(outcome)
            if outcome.ok:
                self._response = outcome.response
                self._end = stream_end(outcome)
                content_type = (outcome.headers or {}).get("content-type", "")
                if "json" in content_type.lower():
                    self._json = bytearray()
                    self._sniffed = True
            else:
                self.error = outcome.error

    @property
    def model(self) -> str:
        """The model this stream asked for (the request's, or its config's default)."""
        return self._call.model

    @property
    def provider(self) -> str:
        """The provider this stream's config calls (after any fallback)."""
        return self._call.resolved.provider

    @property
    def admission(self):
        """The call's llm_providers.limits.Admission (x-ratelimit-* headers), or None."""
        return self._call.admission

    # -- what the bytes mean ------------------------------------------------------------
    def _feed(self, chunk: bytes) -> Iterator[StreamDelta]:
        """The deltas `chunk` completes; stops (sets _done) at an error or the end."""
        if not chunk:
            return iter(())
        if self.tap is not None:
            self.tap(chunk)
        if not self._sniffed:
            stripped = chunk.lstrip()
            if not stripped:
                return iter(())
            self._sniffed = True
            if stripped[:1] in (b"{", b"["):
                self._json = bytearray()
        if self._json is not None:
            self._json += chunk
            if len(self._json) > MAX_BODY_BYTES:
                return iter(
                    self._fail(
                        ProviderError(
                            ErrorType.BAD_RESPONSE,
                            f"The reply is larger than {MAX_BODY_BYTES} bytes.",
                        )
                    )
                )
            return iter(())
        return self._interpret(self._parser.feed(chunk))

    def _finish_bytes(self):
        """The upstream closed the stream: what its last bytes meant."""
        self._ended = True
        if self._json is not None:
            return self._from_json(bytes(self._json))
        return self._last_events()

    def _last_events(self) -> Iterator[StreamDelta]:
        yield from self._interpret(self._parser.end())
        if not self._events and self._stream_error is None:
            yield from self._fail(
                ProviderError(
                    ErrorType.BAD_RESPONSE,
                    f"{self._adapter.label}: the stream ended without sending any event.",
                )
            )

    def _interpret(self, events) -> Iterator[StreamDelta]:
        # Lazy: an event is interpreted (and counted as relayed) only when its delta is
        # asked for, so a stream closed between two deltas of one chunk stops there.
        for event in events:
            self._events += 1
            delta = self._adapter.parse_stream_event(event, self._state)
            if delta is None:
                continue
            if delta.error is not None:
                self._stream_error = delta.error
                self._done = True
                yield delta
                return
            if delta.text:
                self._parts.append(delta.text)
            for fragment in delta.tool_calls:
                self._add_tool_fragment(fragment)
            yield delta
            if delta.done:
                self._done = True
                return

    def _from_json(self, body: bytes) -> list[StreamDelta]:
        """A stream answered with one JSON reply: relayed as its deltas, or bad_response."""
        self._done = True
        adapter = self._adapter
        try:
            reply = adapter.parse_chat_response(parse_json(body), self._call_headers())
        except BadResponse as exc:
            # An error body with a 2xx status, or something else entirely.
            return self._fail(
                ProviderError(
                    ErrorType.BAD_RESPONSE,
                    f"{adapter.label}: the stream was answered with JSON that is not a reply "
                    f"({exc})",
                )
            )
        state = self._state
        state.usage = reply.usage
        state.model = reply.model or state.model
        state.finish_reason = reply.finish_reason
        state.provider_finish_reason = reply.provider_finish_reason
        if reply.content:
            self._parts.append(reply.content)
        fragments = [
            ToolCallDelta(
                index=i,
                id=c.get("id"),
                name=(c.get("function") or {}).get("name"),
                arguments=(c.get("function") or {}).get("arguments") or "",
            )
            for i, c in enumerate(reply.tool_calls or [])
        ]
        for fragment in fragments:
            self._add_tool_fragment(fragment)
        return [
            StreamDelta(text=reply.content, model=reply.model, tool_calls=fragments),
            StreamDelta(
                finish_reason=reply.finish_reason,
                provider_finish_reason=reply.provider_finish_reason,
                usage=reply.usage,
                done=True,
            ),
        ]

    def _add_tool_fragment(self, fragment) -> None:
        call = self._tool_calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
        if fragment.id:
            call["id"] = fragment.id
        if fragment.name and not call["name"]:
            call["name"] = fragment.name
        call["arguments"] += fragment.arguments

    def tool_calls(self) -> list[dict]:
        """The tool calls received so far, in index order, in OpenAI's shape."""
        return [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for _, c in sorted(self._tool_calls.items())
        ]

    def _final_delta(self) -> StreamDelta:
        """The last event: the stream is over, and here is its ChatResult."""
        state = self._state
        return StreamDelta(
            done=True,
            finish_reason=state.finish_reason,
            provider_finish_reason=state.provider_finish_reason,
            usage=state.usage,
            model=state.model,
            result=self.result,
        )

    def _call_headers(self):
        return getattr(self._response, "headers", None)

    def _fail(self, error: ProviderError) -> list[StreamDelta]:
        self._stream_error = error
        self._done = True
        return [StreamDelta(error=error)]

    def _timed_out(self) -> list[StreamDelta]:
        return self._fail(ProviderError(ErrorType.TIMEOUT, "The stream exceeded its time bound."))

    def _broken(self, exc: BaseException, url: str) -> list[StreamDelta]:
        error, _ = transport_error(exc, url)
        return self._fail(error)

    # -- its usage row -------------------------------------------------------------------
    def _finish_kwargs(self) -> dict:
        state = self._state
        error = self._stream_error
        finished = self._done or state.finish_reason is not None
        usage = state.usage
        extra: dict = {"stream": True}
        if not finished and not error:
            # Ended by the upstream without a finish reason, or abandoned by our caller.
            if self._ended:
                extra["stream_incomplete"] = True
            else:
                extra["client_disconnected"] = True
                if usage is None and self._parts:
                    relayed = sum(len(p) for p in self._parts)
                    usage = TokenUsage(completion_tokens=math.ceil(relayed / CHARS_PER_TOKEN))
                    extra["completion_tokens_estimated"] = True
        if self._json is not None and not error:
            extra["stream_answered_with_json"] = True
        return {
            "content": "".join(self._parts),
            "usage": usage,
            "error": error,
            "finish_reason": state.finish_reason,
            "provider_finish_reason": state.provider_finish_reason,
            "reported_model": state.model,
            "extra_metadata": extra,
            "tool_calls": self.tool_calls(),
        }


class ChatStream(_StreamRecord):
    """Iterate for StreamDeltas; `result` holds the CompletionResult once the stream ended.

    `error` is set at once when the call failed before streaming (no config, an HTTP
    error, a refused address…); iterating then yields nothing. `close()` (called at the
    end, by a `with` block, or by the server when the client goes away) records the
    usage row exactly once, with the text and usage received so far.
    """

    def __init__(self, call: CallRecord, outcome, adapter, *, error: ProviderError | None = None):
        super().__init__(call, outcome, adapter, error=error)
        if self.error is not None:
            self.result = call.finish(error=self.error)

    def __iter__(self) -> Iterator[StreamDelta]:
        if self._response is None:
            return
        guard = watchdog.guard_response(self._response, self._end)
        try:
            try:
                for chunk in self._response.iter_content(chunk_size=None):
                    yield from self._feed(chunk)
                    if self._done:
                        break
                else:
                    if guard is not None and guard.fired:  # cut by the watchdog: an EOF
                        yield from self._timed_out()
                    else:
                        yield from self._finish_bytes()
            except (requests.RequestException, OSError) as exc:  # broke off mid-stream
                if guard is not None and guard.fired:
                    yield from self._timed_out()
                else:
                    yield from self._broken(exc, self._response.url)
        finally:
            watchdog.watchdog.cancel(guard)
            self.close()
        yield self._final_delta()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        if self.result is not None or self._closing:
            return
        self._closing = True  # once, even when the write raises
        if self._response is not None:
            self._response.close()
        self.result = self._call.finish(**self._finish_kwargs())


class AsyncChatStream(_StreamRecord):
    """`ChatStream`'s async twin: `async for delta in stream`, `await stream.aclose()`.

    Made by `LLMService.astream_chat` (which has already written the row of a call that
    failed before streaming). The usage row is written without blocking the loop, and
    also when the task is cancelled mid-stream (shielded: a second cancellation cannot
    lose it).
    """

    def __aiter__(self) -> AsyncIterator[StreamDelta]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[StreamDelta]:
        async with contextlib.aclosing(self._reads()) as reads:
            async for read in reads:
                for delta in read:
                    yield delta

    async def batches(self) -> AsyncIterator[list[StreamDelta]]:
        """The deltas as they arrive, those of one network read together (a relay sends
        them on in one write: under load, when several events wait in the socket, that is
        one pass through the server's send path instead of one per event)."""
        async with contextlib.aclosing(self._reads()) as reads:
            async for read in reads:
                batch = list(read)
                if batch:
                    yield batch

    async def _reads(self) -> AsyncGenerator[Iterable[StreamDelta], None]:
        """Per network read, the (lazy) deltas it holds; then the final delta. Each must
        be consumed before the next read is asked for."""
        if self._response is None:
            return
        response = self._response
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout_at(_loop_deadline(loop, self._end)):
                    async for chunk in response.content.iter_any():
                        yield self._feed(chunk)
                        if self._done:
                            break
                    else:
                        yield self._finish_bytes()
            except TimeoutError:
                yield self._timed_out()
            except (aiohttp.ClientError, OSError) as exc:
                yield self._broken(exc, str(response.url))
        finally:
            await self.aclose()
        yield (self._final_delta(),)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()

    async def aclose(self) -> None:
        if self.result is not None or self._closing:
            return
        self._closing = True  # once, even when the write raises
        if self._response is not None:
            self._response.close()  # at once: the provider sees the stream end
        self.result = await self._call.afinish(**self._finish_kwargs())


def _loop_deadline(loop, end: float | None) -> float | None:
    if end is None:
        return None
    return loop.time() + (end - time.monotonic())
