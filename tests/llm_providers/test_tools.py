# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Tools both ways (SPEC §13): OpenAI's shapes in, each provider's wire format out, and back.

The exact request each provider receives is asserted (responses for the Python API,
pytest-httpserver behind a live server for the SDKs).
"""

import json

import pytest
import responses

from llm_providers.engine.results import ChatResult, ToolCall
from llm_providers.models import UsageLog
from llm_providers.services import LLMService

from .test_gateway import (  # noqa: F401 (fixtures)
    _fresh_gateway_cache,
    client,
    configure,
    only_row,
    sdk,
    sent_to_upstream,
    upstream_json,
    upstream_stream,
)
from .wire_samples import (
    QUESTION,
    WEATHER_TOOL,
    anthropic_reply,
    anthropic_tool_reply,
    anthropic_tool_stream,
    openai_tool_reply,
    openai_tool_stream,
)

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
PARIS_LYON = [
    ToolCall("toolu_01", "get_weather", '{"city": "Paris"}'),
    ToolCall("toolu_02", "get_weather", '{"city": "Lyon"}'),
]
# The history a client sends back after running both tools.
HISTORY = [
    {"role": "system", "content": "Be brief."},
    *QUESTION,
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "toolu_02",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_01", "content": "18 C, sunny"},
    {"role": "tool", "tool_call_id": "toolu_02", "content": "15 C, rain"},
]
ANTHROPIC_HISTORY = [
    {"role": "user", "content": "Weather in Paris and Lyon?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {
                "type": "tool_use",
                "id": "toolu_02",
                "name": "get_weather",
                "input": {"city": "Lyon"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "15 C, rain"},
        ],
    },
]
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


def body_of(call) -> dict:
    return json.loads(call.request.body)


# -- the Python API, exact wire requests -------------------------------------------------
@responses.activate
def test_openai_gets_tools_tool_choice_and_parallel_flag_as_given(openai_config):
    responses.post(OPENAI_URL, json=openai_tool_reply())
    choice = {"type": "function", "function": {"name": "get_weather"}}

    result = LLMService("tenant_123").chat(
        QUESTION, tools=[WEATHER_TOOL], tool_choice=choice, extra={"parallel_tool_calls": False}
    )

    body = body_of(responses.calls[0])
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == choice
    assert body["parallel_tool_calls"] is False
    assert isinstance(result, ChatResult)
    assert result.success and result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Lyon"}'),
    ]
    assert result.as_dict()["tool_calls"][0] == {
        "id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
@responses.activate
def test_anthropic_gets_tools_with_input_schema_and_its_tool_choice(
    anthropic_config, tool_choice, parallel, expected
):
    responses.post(ANTHROPIC_URL, json=anthropic_tool_reply())
    extra = {} if parallel is None else {"parallel_tool_calls": parallel}

    LLMService("tenant_123").chat(
        QUESTION, tools=[WEATHER_TOOL], tool_choice=tool_choice, extra=extra
    )

    body = body_of(responses.calls[0])
    assert body["tools"] == [ANTHROPIC_TOOL]
    assert body.get("tool_choice") == expected
    assert "parallel_tool_calls" not in body


@responses.activate
def test_anthropic_tool_use_reply_becomes_openai_tool_calls(anthropic_config):
    responses.post(ANTHROPIC_URL, json=anthropic_tool_reply())

    result = LLMService("tenant_123").chat(QUESTION, tools=[WEATHER_TOOL])

    assert result.success
    assert result.content == "Checking."
    assert result.finish_reason == "tool_calls"
    assert result.provider_finish_reason == "tool_use"
    assert result.tool_calls == PARIS_LYON
    assert all(json.loads(c.arguments) for c in result.tool_calls)  # JSON strings


@responses.activate
def test_anthropic_history_keeps_ids_and_merges_parallel_results_into_one_user_turn(
    anthropic_config,
):
    responses.post(ANTHROPIC_URL, json=anthropic_reply([{"type": "text", "text": "Sunny."}]))

    result = LLMService("tenant_123").chat(HISTORY, tools=[WEATHER_TOOL])

    body = body_of(responses.calls[0])
    assert body["system"] == "Be brief."
    assert body["messages"] == ANTHROPIC_HISTORY
    assert result.content == "Sunny." and result.tool_calls == []


@responses.activate
def test_tool_result_followed_by_a_user_message_stays_in_order(anthropic_config):
    responses.post(ANTHROPIC_URL, json=anthropic_reply([{"type": "text", "text": "Ok."}]))

    LLMService("tenant_123").chat(
        [*HISTORY, {"role": "user", "content": "And tomorrow?"}], tools=[WEATHER_TOOL]
    )

    messages = body_of(responses.calls[0])["messages"]
    assert messages[:3] == ANTHROPIC_HISTORY
    assert messages[3] == {"role": "user", "content": "And tomorrow?"}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        (
            {"tool_choice": {"type": "function", "function": {}}, "tools": [WEATHER_TOOL]},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"extra": {"frequency_penalty": 1}}, "frequency_penalty"),
        ({"extra": {"seed": 7}}, "seed"),
        ({"extra": {"logprobs": True}}, "logprobs"),
        ({"extra": {"functions": [{"name": "f"}]}}, "functions"),
    ],
)
def test_anthropic_refuses_fields_it_cannot_honour(anthropic_config, no_network, kwargs, param):
    result = LLMService("tenant_123").chat(QUESTION, **kwargs)

    assert not result.success
    assert result.error.type == "invalid_request"
    assert result.error.param == param
    assert param.split(".")[0] in result.error.message or param in ("tools", "tool_choice")
    row = UsageLog.objects.get()  # logged like every call
    assert (row.success, row.error_type) == (False, "invalid_request")


@pytest.fixture
def no_network():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        assert len(mock.calls) == 0, "a request was sent to a provider"


# -- streams through the Python API ------------------------------------------------------
@responses.activate
def test_anthropic_stream_gives_one_stable_index_per_parallel_call(anthropic_config):
    responses.post(ANTHROPIC_URL, body=anthropic_tool_stream(), content_type="text/event-stream")

    events = list(LLMService("tenant_123").stream_chat(QUESTION, tools=[WEATHER_TOOL]))

    fragments = [f for e in events for f in e.tool_calls]
    assert [(f.index, f.id, f.name, f.arguments) for f in fragments] == [
        (0, "toolu_01", "get_weather", ""),
        (0, None, None, '{"city": '),
        (0, None, None, '"Paris"}'),
        (1, "toolu_02", "get_weather", ""),
        (1, None, None, '{"ci'),
        (1, None, None, 'ty": "Lyon"}'),
    ]
    assert "".join(e.text for e in events) == "Checking."
    final = events[-1]
    assert final.done and isinstance(final.result, ChatResult)
    assert final.result.tool_calls == PARIS_LYON
    assert final.result.finish_reason == "tool_calls"
    assert UsageLog.objects.get().pk == final.result.usage_log_id


@responses.activate
def test_openai_stream_tool_call_deltas_are_relayed_as_they_come(openai_config):
    responses.post(OPENAI_URL, body=openai_tool_stream(), content_type="text/event-stream")

    stream = LLMService("tenant_123").stream_chat(QUESTION, tools=[WEATHER_TOOL])
    events = list(stream)

    fragments = [(f.index, f.id, f.arguments) for e in events for f in e.tool_calls]
    assert fragments == [
        (0, "call_1", ""),
        (0, None, '{"city": '),
        (0, None, '"Paris"}'),
        (1, "call_2", ""),
        (1, None, '{"city": "Lyon"}'),
    ]
    assert stream.result.tool_calls == [
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Lyon"}'),
    ]
    assert stream.result.finish_reason == "tool_calls"
    assert stream.result.prompt_tokens == 50


# -- through the gateway with the openai SDK and langchain --------------------------------
pytestmark_gateway = pytest.mark.django_db(transaction=True)


@pytestmark_gateway
def test_sdk_tool_round_trip_on_an_anthropic_tenant(client, configure, httpserver, tenant):
    configure("anthropic")
    httpserver.expect_ordered_request("/v1/messages").respond_with_json(anthropic_tool_reply())
    httpserver.expect_ordered_request("/v1/messages").respond_with_json(
        anthropic_reply([{"type": "text", "text": "Paris 18 C, Lyon 15 C."}])
    )
    messages = [{"role": "system", "content": "Be brief."}, *QUESTION]

    first = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=messages, tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_01", "get_weather", {"city": "Paris"}),
        ("toolu_02", "get_weather", {"city": "Lyon"}),
    ]
    messages.append(choice.message.model_dump(exclude_none=True))
    for call, answer in zip(calls, ["18 C, sunny", "15 C, rain"], strict=True):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})

    second = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=messages, tools=[WEATHER_TOOL]
    )

    assert second.choices[0].message.content == "Paris 18 C, Lyon 15 C."
    body = json.loads(httpserver.log[1][0].data)
    assert body["messages"] == ANTHROPIC_HISTORY
    assert body["tools"] == [ANTHROPIC_TOOL]
    assert UsageLog.objects.for_tenant(tenant).count() == 2


def _collect_stream_calls(chunks) -> tuple[dict, list]:
    calls: dict[int, dict] = {}
    finish = []
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for fragment in delta.tool_calls or []:
            call = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
            if fragment.id:
                call["id"] = fragment.id
            if fragment.function and fragment.function.name:
                call["name"] = fragment.function.name
            if fragment.function and fragment.function.arguments:
                call["arguments"] += fragment.function.arguments
        if chunk.choices[0].finish_reason:
            finish.append(chunk.choices[0].finish_reason)
    return calls, finish


@pytestmark_gateway
@pytest.mark.parametrize("provider", ["anthropic", "openai", "groq", "local"])
def test_sdk_streamed_parallel_tool_calls_on_every_provider(
    provider, client, configure, httpserver, tenant
):
    configure(provider)
    ids = ("toolu_01", "toolu_02") if provider == "anthropic" else ("call_1", "call_2")
    upstream_stream(
        httpserver,
        provider,
        anthropic_tool_stream() if provider == "anthropic" else openai_tool_stream(),
    )

    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=QUESTION,
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    calls, finish = _collect_stream_calls(chunks)
    assert calls == {
        0: {"id": ids[0], "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": ids[1], "name": "get_weather", "arguments": '{"city": "Lyon"}'},
    }
    assert finish == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 50
    row = only_row(tenant)
    assert (row.success, row.completion_tokens) == (True, 20)
    sent = sent_to_upstream(httpserver)[1]
    assert sent["tools"] == ([ANTHROPIC_TOOL] if provider == "anthropic" else [WEATHER_TOOL])


@pytestmark_gateway
def test_sdk_gets_a_400_naming_the_field_anthropic_cannot_honour(client, configure, httpserver):
    import openai

    configure("anthropic")

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude-sonnet-4-5", messages=QUESTION, logit_bias={"50256": -100}
        )

    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == "logit_bias" and error["code"] == "unsupported_parameter"
    assert error["type"] == "invalid_request_error"
    assert "logit_bias" in error["message"]
    assert httpserver.log == []  # nothing was sent


@pytestmark_gateway
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_langchain_bind_tools_round_trip(provider, live_server, api_key, configure, httpserver):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    configure(provider)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    first = (
        anthropic_tool_reply()
        if provider == "anthropic"
        else openai_tool_reply(calls=(("toolu_01", "Paris"), ("toolu_02", "Lyon")))
    )
    final_text = "Paris 18 C, Lyon 15 C."
    final = (
        anthropic_reply([{"type": "text", "text": final_text}])
        if provider == "anthropic"
        else {
            **openai_tool_reply(),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": final_text},
                }
            ],
        }
    )
    httpserver.expect_ordered_request(path).respond_with_json(first)
    httpserver.expect_ordered_request(path).respond_with_json(final)
    llm = ChatOpenAI(
        model="m", base_url=f"{live_server.url}/v1", api_key=api_key.plain_key, max_retries=0
    ).bind_tools([WEATHER_TOOL])

    history = [HumanMessage("Weather in Paris and Lyon?")]
    reply = llm.invoke(history)
    assert [(c["id"], c["name"], c["args"]) for c in reply.tool_calls] == [
        ("toolu_01", "get_weather", {"city": "Paris"}),
        ("toolu_02", "get_weather", {"city": "Lyon"}),
    ]
    history += [
        reply,
        ToolMessage("18 C, sunny", tool_call_id="toolu_01"),
        ToolMessage("15 C, rain", tool_call_id="toolu_02"),
    ]
    answer = llm.invoke(history)

    assert answer.content == final_text
    sent = json.loads(httpserver.log[1][0].data)
    if provider == "anthropic":
        assert sent["messages"][1]["content"][1:] == ANTHROPIC_HISTORY[1]["content"][1:]
        assert sent["messages"][2] == ANTHROPIC_HISTORY[2]
    else:
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]


@pytestmark_gateway
def test_langchain_streams_tool_calls_from_an_anthropic_tenant(
    live_server, api_key, configure, httpserver
):
    from langchain_openai import ChatOpenAI

    configure("anthropic")
    upstream_stream(httpserver, "anthropic", anthropic_tool_stream())
    llm = ChatOpenAI(
        model="m", base_url=f"{live_server.url}/v1", api_key=api_key.plain_key, max_retries=0
    ).bind_tools([WEATHER_TOOL])

    merged = None
    for chunk in llm.stream("Weather in Paris and Lyon?"):
        merged = chunk if merged is None else merged + chunk

    assert merged.content == "Checking."
    assert [(c["id"], c["args"]) for c in merged.tool_calls] == [
        ("toolu_01", {"city": "Paris"}),
        ("toolu_02", {"city": "Lyon"}),
    ]


def test_tools_must_be_a_list(anthropic_config):
    with pytest.raises(ValueError):
        LLMService("tenant_123").chat(QUESTION, tools={"type": "function"})


@responses.activate
def test_the_readmes_tool_round_trip_loop_runs_on_anthropic(anthropic_config):
    responses.post(ANTHROPIC_URL, json=anthropic_tool_reply())
    responses.post(ANTHROPIC_URL, json=anthropic_reply([{"type": "text", "text": "Mild."}]))
    service = LLMService("tenant_123")

    def get_weather(city):
        return {"city": city, "temp_c": 18}

    # As in README.md, "Python API":
    messages = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
    result = service.chat(messages, tools=[WEATHER_TOOL], tool_choice="auto")
    while result.success and result.tool_calls:
        messages.append(
            {
                "role": "assistant",
                "content": result.content or None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in result.tool_calls
                ],
            }
        )
        for call in result.tool_calls:
            answer = get_weather(**json.loads(call.arguments))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(answer)}
            )
        result = service.chat(messages, tools=[WEATHER_TOOL])

    assert result.content == "Mild."
    sent = body_of(responses.calls[1])["messages"]
    assert [b["tool_use_id"] for b in sent[2]["content"]] == ["toolu_01", "toolu_02"]
