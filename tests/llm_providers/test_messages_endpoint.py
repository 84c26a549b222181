# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Anthropic-compatible /v1/messages and /v1/messages/count_tokens, driven by the official
`anthropic` SDK against the live server: passed through for Anthropic tenants, translated
for OpenAI-shaped ones."""

import json

import anthropic
import pytest
import requests
from werkzeug import Response

from llm_providers.models import UsageLog
from tests.support.wire import ANTHROPIC_KEY

from .test_gateway import _fresh_gateway_cache, configure  # noqa: F401
from .wire_samples import (
    anthropic_reply,
    anthropic_tool_reply,
    anthropic_tool_stream,
    openai_tool_reply,
    openai_tool_stream,
    sse,
)

pytestmark = pytest.mark.django_db(transaction=True)

TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def claude(live_server, api_key):
    clients = []

    def make(**kwargs):
        clients.append(
            anthropic.Anthropic(
                base_url=live_server.url,
                api_key=api_key.plain_key,
                max_retries=0,
                timeout=20,
                **kwargs,
            )
        )
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def only_row(tenant):
    rows = list(UsageLog.objects.for_tenant(tenant))
    assert len(rows) == 1, rows
    return rows[0]


# -- Anthropic tenants: passed through ------------------------------------------------------
def test_passthrough_sends_the_body_as_written_with_the_tenants_key(
    claude, configure, httpserver, tenant
):
    configure("anthropic")
    httpserver.expect_request("/v1/messages", method="POST").respond_with_json(
        anthropic_tool_reply()
    )

    message = claude().messages.create(
        model="claude-haiku-4-5",
        max_tokens=300,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}],
        tools=[TOOL],
        extra_headers={
            "anthropic-beta": "token-efficient-tools-2025-02-19",
            "anthropic-version": "2023-06-01",
        },
    )

    request, _ = httpserver.log[0]
    assert request.headers["x-api-key"] == ANTHROPIC_KEY  # the tenant's, not the client's
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    assert request.get_json() == {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Weather in Paris and Lyon?"}],
        "tools": [TOOL],
    }
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    row = only_row(tenant)
    assert (row.provider, row.endpoint, row.prompt_tokens, row.completion_tokens) == (
        "anthropic",
        "chat",
        50,
        20,
    )
    assert row.metadata["via"] == "v1/messages"


def test_passthrough_stream_is_relayed_byte_for_byte_and_logged(
    claude, configure, httpserver, tenant
):
    configure("anthropic")
    upstream = anthropic_tool_stream()
    httpserver.expect_request("/v1/messages").respond_with_response(
        Response(upstream, mimetype="text/event-stream")
    )

    with claude().messages.stream(
        model="claude-haiku-4-5",
        max_tokens=300,
        tools=[TOOL],
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()

    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("text", None),
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Lyon"}),
    ]
    assert only_row(tenant).completion_tokens == 20

    raw = requests.post(
        f"{str(claude().base_url).rstrip('/')}/v1/messages",
        json={
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"x-api-key": claude().api_key},
        timeout=20,
    )
    assert raw.text == upstream
    # No anthropic-version from this client: Anthropic's stable one is sent.
    assert httpserver.log[1][0].headers["anthropic-version"] == "2023-06-01"


def test_passthrough_errors_keep_anthropics_shape(claude, configure, httpserver):
    configure("anthropic")
    httpserver.expect_ordered_request("/v1/messages").respond_with_json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}},
        status=429,
        headers={"retry-after": "7"},
    )
    httpserver.expect_ordered_request("/v1/messages").respond_with_json(
        {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
        status=401,
    )
    client = claude()
    args = dict(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])

    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**args)
    with pytest.raises(anthropic.APIStatusError) as upstream_auth:
        client.messages.create(**args)

    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert "Slow down" in limited.value.body["error"]["message"]
    assert limited.value.response.headers["retry-after"] == "7"
    # The provider refused the tenant's stored key: not the client's fault, not a 401.
    assert upstream_auth.value.status_code == 502
    assert upstream_auth.value.body["type"] == "error"
    assert ANTHROPIC_KEY not in upstream_auth.value.response.text


def test_count_tokens_is_passed_through_and_logged_free(claude, configure, httpserver, tenant):
    configure("anthropic")
    httpserver.expect_request("/v1/messages/count_tokens").respond_with_json({"input_tokens": 14})

    counted = claude().messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hello"}]
    )

    assert counted.input_tokens == 14
    assert httpserver.log[0][0].get_json()["messages"] == [{"role": "user", "content": "Hello"}]
    row = only_row(tenant)
    assert (row.endpoint, row.success, row.cost_usd) == ("count_tokens", True, 0)


def test_bearer_key_works_and_a_missing_key_is_anthropics_401(
    live_server, api_key, configure, httpserver
):
    configure("anthropic")
    httpserver.expect_request("/v1/messages").respond_with_json(
        anthropic_reply([{"type": "text", "text": "Hi"}])
    )
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}

    ok = requests.post(
        f"{live_server.url}/v1/messages",
        json=body,
        timeout=10,
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
    )
    missing = requests.post(f"{live_server.url}/v1/messages", json=body, timeout=10)

    assert ok.status_code == 200 and ok.json()["content"][0]["text"] == "Hi"
    assert missing.status_code == 401
    assert missing.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": missing.json()["error"]["message"]},
    }


# -- OpenAI-shaped tenants: translated ------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "local"])
def test_translated_request_and_tool_round_trip(provider, claude, configure, httpserver, tenant):
    configure(provider)
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(
        openai_tool_reply(calls=(("toolu_01", "Paris"),))
    )
    final = openai_tool_reply()
    final["choices"] = [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "18 C."}}
    ]
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(final)
    client = claude()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "aGk="},
                },
            ],
        }
    ]

    first = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        system="Be brief.",
        messages=messages,
        tools=[TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )

    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert (use.id, use.name, use.input) == ("toolu_01", "get_weather", {"city": "Paris"})
    assert first.usage.input_tokens == 50 and first.usage.output_tokens == 20
    sent = httpserver.log[0][0].get_json()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
            ],
        },
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": TOOL["input_schema"],
                "description": TOOL["description"],
            },
        }
    ]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"}
            ],
        },
    ]
    second = client.messages.create(
        model="gpt-4o-mini", max_tokens=100, messages=messages, tools=[TOOL]
    )

    assert second.content[0].text == "18 C." and second.stop_reason == "end_turn"
    sent = httpserver.log[1][0].get_json()["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["tool_calls"] == [
        {
            "id": "toolu_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_01", "content": "18 C, sunny"}
    assert UsageLog.objects.for_tenant(tenant).count() == 2


def test_translated_stream_follows_anthropics_event_order(claude, configure, httpserver, tenant):
    configure("openai")
    text_then_tools = (
        sse([{"choices": [{"index": 0, "delta": {"content": "Checking."}, "finish_reason": None}]}])
        + openai_tool_stream()
    )
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        Response(text_then_tools, mimetype="text/event-stream")
    )

    with claude().messages.stream(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[TOOL],
        messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()

    raw = [
        k
        for k in kinds
        if k
        in {
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        }
    ]
    assert raw[0] == "message_start" and raw[-2:] == ["message_delta", "message_stop"]
    assert raw.count("content_block_start") == raw.count("content_block_stop") == 3
    assert [
        (b.type, getattr(b, "text", None), getattr(b, "input", None)) for b in final.content
    ] == [
        ("text", "Checking.", None),
        ("tool_use", None, {"city": "Paris"}),
        ("tool_use", None, {"city": "Lyon"}),
    ]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 20
    assert only_row(tenant).completion_tokens == 20


def test_count_tokens_on_an_openai_tenant_is_a_clear_400(claude, configure, httpserver):
    configure("openai")

    with pytest.raises(anthropic.BadRequestError) as caught:
        claude().messages.count_tokens(model="m", messages=[{"role": "user", "content": "x"}])

    assert "count_tokens" in caught.value.body["error"]["message"]
    assert httpserver.log == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"extra_body": {"top_k": 5}}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ],
)
def test_translated_fields_without_an_equivalent_are_refused(
    claude, configure, httpserver, extra, field
):
    configure("openai")

    with pytest.raises(anthropic.BadRequestError) as caught:
        claude().messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}], **extra
        )

    assert field in caught.value.body["error"]["message"]
    assert httpserver.log == []


def test_translated_reply_through_the_sdk_on_a_plain_answer(claude, configure, httpserver):
    configure("groq")
    reply = openai_tool_reply()
    reply["choices"] = [
        {
            "index": 0,
            "finish_reason": "length",
            "message": {"role": "assistant", "content": "Bonjour"},
        }
    ]
    httpserver.expect_request("/openai/v1/chat/completions").respond_with_json(reply)

    message = claude().messages.create(
        model="llama", max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
    )

    assert message.content[0].text == "Bonjour"
    assert message.stop_reason == "max_tokens"
    assert json.loads(httpserver.log[0][0].data)["max_tokens"] == 2
