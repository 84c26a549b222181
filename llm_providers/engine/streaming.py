"""ChatStream: a streaming chat's deltas, and its usage row once it ended."""

from collections.abc import Iterator

import requests

from ..errors import ProviderError
from ..providers.base import StreamDelta, StreamState, iter_sse
from ..transport.errors import transport_error
from .calls import CallRecord
from .results import CompletionResult


class ChatStream:
    """Iterate for StreamDeltas; `result` holds the CompletionResult once the stream ended.

    `error` is set at once when the call failed before streaming (no config, an HTTP
    error, a refused address…); iterating then yields nothing. `close()` (called at the
    end, by a `with` block, or by the WSGI server when the client goes away) records the
    usage row exactly once, with the text and usage received so far.
    """

    def __init__(self, call: CallRecord, outcome, adapter, *, error: ProviderError | None = None):
        self._call = call
        self._adapter = adapter
        self._response = None
        self._parts: list[str] = []
        self._tool_calls: dict[int, dict] = {}  # index → the call assembled so far
        self._state = StreamState()
        self._done = False
        self._ended = False
        self._stream_error: ProviderError | None = None
        self.result: CompletionResult | None = None
        self.error: ProviderError | None = None
        # Called with every raw chunk from the provider (the /v1/messages pass-through).
        self.tap = None
        if error is not None:
            self.error = error  # refused before sending (a field the provider lacks)
        elif outcome is None:
            self.error = call.resolved.error
        else:
            call.outcome(outcome)
            if outcome.ok:
                self._response = outcome.response
            else:
                self.error = outcome.error
        if self.error is not None:
            self.result = call.finish(error=self.error)

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

    def __iter__(self) -> Iterator[StreamDelta]:
        if self._response is None:
            return
        try:
            for event in iter_sse(self._chunks()):
                delta = self._adapter.parse_stream_event(event, self._state)
                if delta is None:
                    continue
                if delta.error is not None:
                    self._stream_error = delta.error
                    yield delta
                    break
                if delta.text:
                    self._parts.append(delta.text)
                for fragment in delta.tool_calls:
                    self._add_tool_fragment(fragment)
                if delta.done:
                    self._done = True
                    break
                yield delta
            else:
                self._ended = True  # the upstream closed the stream
        except (requests.RequestException, OSError) as exc:  # the connection broke mid-stream
            error, _ = transport_error(exc, self._response.url)
            self._stream_error = error
            yield StreamDelta(error=error)
        finally:
            self.close()
        state = self._state
        yield StreamDelta(
            done=True,
            finish_reason=state.finish_reason,
            provider_finish_reason=state.provider_finish_reason,
            usage=state.usage,
            model=state.model,
            result=self.result,
        )

    def _chunks(self):
        for chunk in self._response.iter_content(chunk_size=None):
            if self.tap is not None:
                self.tap(chunk)
            yield chunk

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

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        if self.result is not None:
            return
        if self._response is not None:
            self._response.close()
        state = self._state
        error = self._stream_error
        finished = self._done or state.finish_reason is not None
        extra = None
        if not finished and not error:
            # Ended by the upstream without a finish reason, or abandoned by our caller.
            extra = {"stream_incomplete": True} if self._ended else {"client_disconnected": True}
        self.result = self._call.finish(
            content="".join(self._parts),
            usage=state.usage,
            error=error,
            finish_reason=state.finish_reason,
            provider_finish_reason=state.provider_finish_reason,
            reported_model=state.model,
            extra_metadata={"stream": True, **(extra or {})},
            tool_calls=self.tool_calls(),
        )
