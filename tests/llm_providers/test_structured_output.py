# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Structured output (response_format json_object / json_schema) on every provider.

OpenAI-shaped providers get `response_format` as sent. Anthropic gets a forced tool
(`switchyard_structured_output`) whose input schema is the requested one; its input comes
back as the text content with finish_reason "stop" (see providers/anthropic_translate.py).
"""

import json

import pytest
import responses
from pydantic import BaseModel

from llm_providers.providers.anthropic_translate import RESPONSE_TOOL
from llm_providers.services import LLMService

from .test_gateway import _fresh_gateway_cache, client, configure, sdk  # noqa: F401
from .wire_samples import QUESTION, WEATHER_TOOL, anthropic_reply, anthropic_stream

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
    "required": ["city", "temp_c"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
}
ANSWER = {"city": "Paris", "temp_c": 18}


def forced_tool_reply(answer=ANSWER):
    return anthropic_reply(
        [{"type": "tool_use", "id": "toolu_9", "name": RESPONSE_TOOL, "input": answer}],
        "tool_use",
    )


class Weather(BaseModel):
    city: str
    temp_c: int


@responses.activate
def test_anthropic_json_schema_is_a_forced_tool_with_that_schema(anthropic_config):
    responses.post(ANTHROPIC_URL, json=forced_tool_reply())

    result = LLMService("tenant_123").chat(QUESTION, response_format=JSON_SCHEMA_FORMAT)

    body = json.loads(responses.calls[0].request.body)
    assert body["tools"] == [
        {"name": RESPONSE_TOOL, "description": "Answer with JSON: weather.", "input_schema": SCHEMA}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
    assert "response_format" not in body
    assert json.loads(result.content) == ANSWER
    assert result.finish_reason == "stop"
    assert result.tool_calls == []


@responses.activate
def test_anthropic_json_object_asks_for_any_object(anthropic_config):
    responses.post(ANTHROPIC_URL, json=forced_tool_reply({"ok": True}))

    result = LLMService("tenant_123").chat(QUESTION, response_format={"type": "json_object"})

    body = json.loads(responses.calls[0].request.body)
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
    assert json.loads(result.content) == {"ok": True}


@responses.activate
def test_anthropic_text_response_format_changes_nothing(anthropic_config):
    responses.post(ANTHROPIC_URL, json=anthropic_reply([{"type": "text", "text": "Hi"}]))

    LLMService("tenant_123").chat(QUESTION, response_format={"type": "text"})

    body = json.loads(responses.calls[0].request.body)
    assert "tools" not in body and "tool_choice" not in body


def test_anthropic_response_format_with_tools_is_refused(anthropic_config):
    result = LLMService("tenant_123").chat(
        QUESTION, tools=[WEATHER_TOOL], response_format=JSON_SCHEMA_FORMAT
    )
    assert result.error.type == "invalid_request"
    assert result.error.param == "response_format"


@responses.activate
def test_anthropic_streamed_structured_output_arrives_as_text(anthropic_config):
    responses.post(
        ANTHROPIC_URL,
        body=anthropic_stream(
            [("tool", "toolu_9", RESPONSE_TOOL, ['{"city": "Pa', 'ris", "temp_c": 18}'])],
            "tool_use",
        ),
        content_type="text/event-stream",
    )

    stream = LLMService("tenant_123").stream_chat(QUESTION, response_format=JSON_SCHEMA_FORMAT)
    events = list(stream)

    assert json.loads("".join(e.text for e in events)) == ANSWER
    assert not any(e.tool_calls for e in events)
    assert stream.result.finish_reason == "stop"
    assert json.loads(stream.result.content) == ANSWER


@pytest.mark.parametrize("provider", ["openai", "groq"])
@responses.activate
def test_openai_shaped_providers_get_response_format_as_sent(provider, request):
    request.getfixturevalue(f"{provider}_config")
    url = OPENAI_URL if provider == "openai" else "https://api.groq.com/openai/v1/chat/completions"
    reply = {
        "id": "c",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": json.dumps(ANSWER)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    responses.post(url, json=reply)

    result = LLMService("tenant_123").chat(QUESTION, response_format=JSON_SCHEMA_FORMAT)

    assert json.loads(responses.calls[0].request.body)["response_format"] == JSON_SCHEMA_FORMAT
    assert json.loads(result.content) == ANSWER


# -- the SDKs' structured-output helpers through the gateway -------------------------------
def _openai_reply_text(text):
    return {
        "id": "chatcmpl-so",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["anthropic", "openai", "local"])
def test_sdk_parse_works_on_every_provider(provider, client, configure, httpserver):
    configure(provider)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    reply = (
        forced_tool_reply() if provider == "anthropic" else _openai_reply_text(json.dumps(ANSWER))
    )
    httpserver.expect_request(path).respond_with_json(reply)

    completion = client.chat.completions.parse(
        model="m", messages=QUESTION, response_format=Weather
    )

    assert completion.choices[0].message.parsed == Weather(city="Paris", temp_c=18)
    sent = json.loads(httpserver.log[0][0].data)
    if provider == "anthropic":
        assert sent["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
        assert sent["tools"][0]["input_schema"]["required"] == ["city", "temp_c"]
    else:
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Weather"


@pytest.mark.django_db(transaction=True)
def test_sdk_streamed_structured_output_on_anthropic(client, configure, httpserver):
    configure("anthropic")
    httpserver.expect_request("/v1/messages").respond_with_data(
        anthropic_stream(
            [("tool", "toolu_9", RESPONSE_TOOL, ['{"city": "Paris", ', '"temp_c": 18}'])],
            "tool_use",
        ),
        content_type="text/event-stream",
    )

    with client.chat.completions.stream(
        model="m", messages=QUESTION, response_format=Weather
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    assert final.choices[0].message.parsed == Weather(city="Paris", temp_c=18)
    assert final.choices[0].finish_reason == "stop"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_langchain_with_structured_output(provider, live_server, api_key, configure, httpserver):
    from langchain_openai import ChatOpenAI

    configure(provider)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    reply = (
        forced_tool_reply() if provider == "anthropic" else _openai_reply_text(json.dumps(ANSWER))
    )
    httpserver.expect_request(path).respond_with_json(reply)
    llm = ChatOpenAI(
        model="m", base_url=f"{live_server.url}/v1", api_key=api_key.plain_key, max_retries=0
    )

    answer = llm.with_structured_output(Weather).invoke("Weather in Paris?")

    assert answer == Weather(city="Paris", temp_c=18)
