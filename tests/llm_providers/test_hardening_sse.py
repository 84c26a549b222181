"""The SSE parser scans each byte once and bounds lines and streams (issue 15.8)."""

import json

from werkzeug import Response

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.providers import get_adapter
from llm_providers.providers.base import MAX_SSE_LINE_BYTES, SSEEvent, StreamState, iter_sse
from llm_providers.services import LLMService

CHUNK = 16 * 1024


def no_newline(size):
    payload = b"data: " + b"A" * size
    return [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]


class Counting:
    """An iterable of chunks that records how much of it the parser consumed."""

    def __init__(self, chunks):
        self.chunks, self.consumed = chunks, 0

    def __iter__(self):
        for chunk in self.chunks:
            self.consumed += len(chunk)
            yield chunk


def test_a_six_megabyte_line_ends_in_a_bad_response_error_at_the_line_bound():
    source = Counting(no_newline(6 * 1024 * 1024))

    events = list(iter_sse(source))

    assert len(events) == 1
    assert events[0].error.type == ErrorType.BAD_RESPONSE
    assert "line longer than" in events[0].error.message
    # It stopped reading at the bound, not at the end of the 6 MB.
    assert source.consumed <= MAX_SSE_LINE_BYTES + CHUNK


def test_a_long_line_within_its_bound_is_parsed_whole():
    # 6 MB in 16 KB chunks: each byte scanned once (this was 35 s of CPU when rescanned).
    chunks = [*no_newline(6 * 1024 * 1024), b"\n\n"]

    events = list(iter_sse(chunks, max_line_bytes=8 * 1024 * 1024))

    assert [len(e.data) for e in events] == [6 * 1024 * 1024]
    assert events[0].error is None


def test_a_stream_past_its_size_bound_ends_in_a_bad_response_error():
    event = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    source = Counting([event] * 10_000)

    events = list(iter_sse(source, max_stream_bytes=100 * len(event)))

    assert len(events) == 101
    assert all(e.error is None for e in events[:100])
    assert events[-1].error.type == ErrorType.BAD_RESPONSE
    assert "larger than" in events[-1].error.message
    assert source.consumed == 101 * len(event)


def test_line_ends_split_across_chunks_are_still_found():
    raw = b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"
    for size in (1, 2, 3, 5):
        events = list(iter_sse([raw[i : i + size] for i in range(0, len(raw), size)]))
        assert events == [SSEEvent(None, "a"), SSEEvent(None, "b"), SSEEvent(None, "c")], size


def test_many_lines_in_one_chunk_are_all_parsed():
    raw = b"".join(b"data: %d\n\n" % i for i in range(50_000))
    assert [e.data for e in iter_sse([raw])] == [str(i) for i in range(50_000)]


def test_every_adapter_turns_the_parser_bound_into_the_streams_error():
    bound = next(iter(iter_sse(no_newline(2 * MAX_SSE_LINE_BYTES))))
    for provider in ("openai", "anthropic", "groq", "local"):
        delta = get_adapter(provider).parse_stream_event(bound, StreamState())
        assert delta.error.type == ErrorType.BAD_RESPONSE, provider


def test_a_provider_streaming_a_six_megabyte_line_fails_the_stream_as_bad_response(
    httpserver, local_config_for
):
    def stream(request):
        return Response(
            (b"data: " + b"A" * CHUNK if i == 0 else b"A" * CHUNK for i in range(384)),
            content_type="text/event-stream",
        )

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(stream)
    local_config_for(httpserver.url_for("/v1"))

    with LLMService("tenant_123").stream_chat([{"role": "user", "content": "x"}]) as chat:
        deltas = list(chat)

    # The error event, then the stream's final event carrying the failed ChatResult.
    assert deltas[-2].error.type == ErrorType.BAD_RESPONSE
    assert deltas[-1].done and deltas[-1].result.error.type == ErrorType.BAD_RESPONSE
    row = UsageLog.objects.get()
    assert (row.success, row.error_type) == (False, "bad_response")
    json.dumps(row.metadata)  # the row is an ordinary one
