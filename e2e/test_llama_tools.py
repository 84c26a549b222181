"""Tool calling against a real llama.cpp llama-server with Gemma 3 270M (make test-e2e).

llama-server runs with `--jinja --chat-template-file e2e/gemma3-tools.jinja`
(scripts/e2e.sh): the GGUF carries no chat template, and without one llama-server
falls back to ChatML and ignores `tools`. That template is Gemma 3's turn format with
the tools described in the first user turn and calls in <tool_call> blocks; llama-server
recognises the format, constrains each call to the tools' JSON schema with a grammar
once `<tool_call>` begins, and answers OpenAI's `tool_calls` (plain and streamed), which
Switchyard relays. At temperature 0 the model answers the question with a call of
`get_weather` for Paris, deterministically.

What this llama-server does not do, so the tests do not pretend it does:
- `tool_choice: "required"` does not force a call: the grammar is lazy (it starts at
  `<tool_call>`), so a call comes from the model following the template, not from the
  grammar. "required" is still sent (and forwarded by Switchyard).
- A named function as `tool_choice` (`{"type": "function", "function": {"name": …}}`):
  llama-server reads `tool_choice` only as a string; an object falls back to "auto".
- `parallel_tool_calls: false` is not honoured: the 270M model repeats its call until
  `max_tokens`, so an answer may hold several calls, the last one cut short
  (`finish_reason: "length"`). The tests check the first call, which is complete, and
  send that one back in the round trip.
"""

import json

import openai
import pytest

from llm_providers.models import UsageLog
from llm_providers.services import LLMService, llm_provider_service
from tests.llm_providers import engines

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MODEL_ALIAS = "gemma-3-270m"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris right now?"}]
TOOL_RESULT = '{"city": "Paris", "temperature_c": 18, "sky": "sunny"}'
# Enough for one whole call (~25 tokens) and little more: the model repeats its call.
TOOL_TOKENS = 40


@pytest.fixture
def llm(tenant, llama_base_url, settings):
    # On a busy two-core machine a 270M model has run at 2 tokens/s: a generous read
    # timeout, and no retry (it would queue behind the abandoned request's single slot).
    settings.LLM_REQUEST_TIMEOUT = 300
    settings.LLM_MAX_RETRIES = 0
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk, provider="local", default_model=MODEL_ALIAS, base_url=llama_base_url
    )
    return LLMService(tenant.pk)


def assert_weather_call(call):
    assert call.name == "get_weather"
    assert call.id
    arguments = json.loads(call.arguments)  # a JSON string, parsed
    assert isinstance(arguments, dict)
    assert isinstance(arguments.get("city"), str) and arguments["city"].strip()


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_a_required_tool_call_comes_back_with_parsed_arguments(llm, engine):
    result = engines.chat(
        engine,
        llm,
        QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=TOOL_TOKENS,
        temperature=0,
    )

    assert result.success, result.error
    assert result.finish_reason in ("tool_calls", "length")  # see the docstring
    assert result.tool_calls, result.content
    assert_weather_call(result.tool_calls[0])
    row = UsageLog.objects.get(pk=result.usage_log_id)
    assert (row.endpoint, row.success) == ("chat", True)
    assert row.prompt_tokens > 0 and row.completion_tokens > 0


def test_a_streamed_tool_call_arrives_in_fragments_of_one_index(llm):
    stream = llm.stream_chat(
        QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=TOOL_TOKENS,
        temperature=0,
    )
    fragments = [f for delta in stream for f in delta.tool_calls]
    stream.close()

    assert stream.error is None, stream.error
    assert fragments, "no tool-call fragments were streamed"
    indexes = sorted({f.index for f in fragments})
    assert indexes == list(range(len(indexes)))  # one index per call, from 0
    first = [f for f in fragments if f.index == 0]
    assert first[0].name == "get_weather" and first[0].id
    result = stream.result
    assert result.finish_reason in ("tool_calls", "length")
    assert len(result.tool_calls) == len(indexes)
    call = result.tool_calls[0]
    assert_weather_call(call)
    assert call.arguments == "".join(f.arguments for f in first)  # the pieces, joined
    row = UsageLog.objects.get(pk=result.usage_log_id)
    assert row.success and row.metadata["stream"] is True and row.completion_tokens > 0


def test_a_tool_round_trip_gets_an_answer(llm):
    asked = llm.chat(
        QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=TOOL_TOKENS,
        temperature=0,
    )
    assert asked.success, asked.error
    call = asked.tool_calls[0]

    # The tool's result goes back with the call it answers; "none": the answer is text.
    history = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call.as_openai()]},
        {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
    ]
    answer = llm.chat(
        history, tools=[WEATHER_TOOL], tool_choice="none", max_tokens=48, temperature=0
    )

    assert answer.success, answer.error
    assert answer.content.strip()
    assert answer.tool_calls == []
    assert answer.finish_reason in ("stop", "length")
    assert UsageLog.objects.filter(endpoint="chat", success=True).count() == 2


# -- the same through /v1 with the openai SDK ---------------------------------------------
@pytest.fixture
def sdk(live_server, api_key, llm):
    client = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=api_key.plain_key, max_retries=0, timeout=300
    )
    yield client
    client.close()


@pytest.mark.django_db(transaction=True)
def test_the_openai_sdk_gets_tool_calls_through_v1_plain_and_streamed(sdk):
    plain = sdk.chat.completions.create(
        model=MODEL_ALIAS,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=TOOL_TOKENS,
        temperature=0,
    )
    call = plain.choices[0].message.tool_calls[0]
    assert plain.choices[0].finish_reason in ("tool_calls", "length")
    assert call.function.name == "get_weather" and call.id
    assert isinstance(json.loads(call.function.arguments)["city"], str)

    chunks = list(
        sdk.chat.completions.create(
            model=MODEL_ALIAS,
            messages=QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice="required",
            max_tokens=TOOL_TOKENS,
            temperature=0,
            stream=True,
        )
    )
    fragments = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    first = [f for f in fragments if f.index == 0]
    assert first and first[0].function.name == "get_weather" and first[0].id
    arguments = "".join(f.function.arguments or "" for f in first)
    assert isinstance(json.loads(arguments)["city"], str)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    assert finish in ("tool_calls", "length")

    # The round trip through /v1: the tool's result back, a text answer.
    answer = sdk.chat.completions.create(
        model=MODEL_ALIAS,
        messages=[
            *QUESTION,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
        ],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        max_tokens=48,
        temperature=0,
    )
    assert answer.choices[0].message.content.strip()
    rows = UsageLog.objects.filter(metadata__via="v1")
    assert [r.success for r in rows] == [True, True, True]
