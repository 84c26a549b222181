"""Streaming pieces for the gateway: SSE parsing per provider and ChatStream's usage row."""

import json

import pytest
from werkzeug import Response

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.providers import get_adapter
from llm_providers.providers.base import SSEEvent, StreamState, iter_sse
from llm_providers.services import LLMService

OPENAI_STREAM = (
    'data: {"id":"c1","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],'
    '"usage":null}\n\n'
    'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}],'
    '"usage":null}\n\n'
    'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,'
    '"total_tokens":11}}\n\n'
    "data: [DONE]\n\n"
)

ANTHROPIC_STREAM = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    '"model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,'
    '"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}\n\n'
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    "event: ping\n"
    'data: {"type": "ping"}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,'
    '"delta":{"type":"text_delta","text":" there"}}\n\n'
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":0}\n\n'
    "event: message_delta\n"
    'data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},'
    '"usage":{"output_tokens":15}}\n\n'
    "event: message_stop\n"
    'data: {"type":"message_stop"}\n\n'
)


def chunks_of(text, size=7):
    data = text.encode()
    return [data[i : i + size] for i in range(0, len(data), size)]


def run(provider, text):
    adapter = get_adapter(provider)
    state = StreamState()
    deltas = [adapter.parse_stream_event(e, state) for e in iter_sse(chunks_of(text))]
    return [d for d in deltas if d is not None], state


def test_sse_parser_handles_split_chunks_crlf_comments_and_multiline_data():
    raw = b": keep-alive\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: last"
    events = list(iter_sse([raw[i : i + 3] for i in range(0, len(raw), 3)]))
    assert events == [SSEEvent("x", "a\nb"), SSEEvent(None, "last")]


def test_openai_stream_yields_text_finish_reason_and_final_usage():
    deltas, state = run("openai", OPENAI_STREAM)

    assert "".join(d.text for d in deltas) == "Hello"
    assert state.finish_reason == "stop"
    assert (state.usage.prompt_tokens, state.usage.completion_tokens) == (9, 2)
    assert deltas[-1].done is True


def test_openai_build_stream_request_asks_for_usage():
    spec = get_adapter("openai").build_stream_request(
        base_url="https://api.openai.com/v1",
        api_key="sk-test-fake-key-0001",
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert spec.stream is True
    assert spec.json["stream"] is True
    assert spec.json["stream_options"] == {"include_usage": True}


def test_groq_usage_in_x_groq_is_read():
    text = (
        'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],'
        '"x_groq":{"id":"req_1","usage":{"prompt_tokens":4,"completion_tokens":1,'
        '"total_tokens":5}}}\n\ndata: [DONE]\n\n'
    )
    _, state = run("groq", text)
    assert state.usage.total_tokens == 5


def test_anthropic_stream_maps_events_and_overwrites_output_tokens():
    deltas, state = run("anthropic", ANTHROPIC_STREAM)

    assert "".join(d.text for d in deltas) == "Hi there"
    assert state.finish_reason == "length"
    assert state.provider_finish_reason == "max_tokens"
    assert state.usage.prompt_tokens == 30  # 25 + 5 cached
    assert state.usage.completion_tokens == 15  # overwritten, not 1 + 15
    assert deltas[-1].done is True


def test_anthropic_error_event_mid_stream_is_a_normalised_error():
    text = (
        "event: error\n"
        'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    deltas, _ = run("anthropic", text)
    assert deltas[0].error.type == ErrorType.OVERLOADED


@pytest.fixture
def streaming_local(httpserver, local_config_for):
    local_config_for(httpserver.url_for("/v1"))
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        Response(OPENAI_STREAM, content_type="text/event-stream")
    )
    return httpserver


def test_stream_chat_records_one_usage_row_at_the_end(streaming_local):
    stream = LLMService("tenant_123").stream_chat([{"role": "user", "content": "Hi"}])

    text = "".join(delta.text for delta in stream)

    assert text == "Hello"
    body = json.loads(streaming_local.log[0][0].data)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    log = UsageLog.objects.get()
    assert log.id == stream.result.usage_log_id
    assert (log.prompt_tokens, log.completion_tokens, log.success) == (9, 2, True)
    assert log.endpoint == "chat" and log.metadata["stream"] is True
    assert log.metadata["finish_reason"] == "stop"


def test_stream_closed_early_still_records_usage(streaming_local):
    stream = LLMService("tenant_123").stream_chat([{"role": "user", "content": "Hi"}])

    iterator = iter(stream)
    next(iterator)
    stream.close()  # the client went away
    stream.close()  # idempotent

    log = UsageLog.objects.get()
    assert log.metadata["client_disconnected"] is True


def test_stream_that_fails_before_starting_reports_the_error(httpserver, local_config_for):
    local_config_for(httpserver.url_for("/v1"))
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "bad model"}}, status=404
    )

    stream = LLMService("tenant_123").stream_chat([{"role": "user", "content": "Hi"}])

    assert stream.error.type == ErrorType.NOT_FOUND
    assert list(stream) == []
    assert UsageLog.objects.get().error_type == "not_found"


def test_stream_cut_off_by_the_upstream_is_marked_incomplete(httpserver, local_config_for):
    local_config_for(httpserver.url_for("/v1"))
    truncated = OPENAI_STREAM.split('data: {"id":"c1","choices":[{"index":0,"delta":{},')[0]
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        Response(truncated, content_type="text/event-stream")
    )

    stream = LLMService("tenant_123").stream_chat([{"role": "user", "content": "Hi"}])
    text = "".join(delta.text for delta in stream)

    assert text == "Hello"
    log = UsageLog.objects.get()
    assert log.metadata["stream_incomplete"] is True
    assert "client_disconnected" not in log.metadata


@pytest.mark.parametrize(
    "text", ["Hello", ' "quoted" \\ back\nslash', "ünïcödé ✋ 日本", "\x00\t", '"content":""']
)
def test_a_text_delta_renders_exactly_as_the_generic_chunk(text):
    """The gateway's fast path for text deltas (bytes around the text made once) gives the
    same bytes as building and encoding the whole chunk, also after the model changes."""
    from llm_providers.gateway.wire import ChatRequest, _ChunkWriter

    writer = _ChunkWriter(ChatRequest(messages=[]), 'gpt-4o-mini "x"')
    for model in ('gpt-4o-mini "x"', "other-model"):
        writer.model = model
        fast = writer.text_event(text)
        assert fast == writer.event(writer.choice({"content": text}))
        assert json.loads(fast.removeprefix(b"data: "))["choices"][0]["delta"]["content"] == text
