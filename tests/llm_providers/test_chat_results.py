"""Typed results (SPEC §13) and honest accounting of cached and reasoning tokens.

The expected costs are worked out by hand from the providers' published prices (per
million tokens), not from the code's own mapping:
- gpt-4o-mini: input $0.15, cached input $0.075, output $0.60;
- claude-haiku-4-5: input $1, cache read $0.10, cache write (5 min) $1.25, output $5;
- o3-mini: input $1.10, output $4.40 (reasoning tokens are output tokens).
"""

from decimal import Decimal

import pytest
import responses

from llm_providers.engine.results import ChatResult, CompletionResult
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from tests.factories import ProviderConfigFactory
from tests.support.wire import ANTHROPIC_KEY, openai_reply

from .wire_samples import QUESTION, anthropic_reply, anthropic_stream, sse

HAIKU = "claude-haiku-4-5-20251001"  # the dated snapshot Anthropic reports
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
OPENAI_CACHED_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_tokens_details": {"cached_tokens": 400},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
ANTHROPIC_CACHED_USAGE = {
    "input_tokens": 100,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "output_tokens": 50,
}


@pytest.fixture
def haiku_config(tenant):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="anthropic",
        default_model="claude-haiku-4-5",
        api_key=ANTHROPIC_KEY,
    )


@responses.activate
def test_openai_cached_tokens_are_counted_and_priced_at_the_cache_price(openai_config):
    responses.post(OPENAI_URL, json=openai_reply("Hi", usage=OPENAI_CACHED_USAGE))

    result = LLMService("tenant_123").chat(QUESTION)

    assert isinstance(result, ChatResult)
    assert (result.prompt_tokens, result.cache_read_tokens, result.cache_write_tokens) == (
        1000,
        400,
        0,
    )
    # 600 * 0.15 + 400 * 0.075 + 100 * 0.60 = 180 per million
    assert result.cost_usd == Decimal("0.00018000")
    row = UsageLog.objects.get()
    assert (row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens) == (1000, 400, 0)
    assert row.cost_usd == Decimal("0.00018000")
    assert result.as_dict()["cache_read_tokens"] == 400


@responses.activate
def test_anthropic_prompt_tokens_include_cache_reads_and_writes(haiku_config):
    responses.post(
        ANTHROPIC_URL,
        json=anthropic_reply(
            [{"type": "text", "text": "Hi"}], usage=ANTHROPIC_CACHED_USAGE, model=HAIKU
        ),
    )

    result = LLMService("tenant_123").chat(QUESTION)

    assert result.prompt_tokens == 1300  # 100 fresh + 1000 read + 200 written
    assert (result.cache_read_tokens, result.cache_write_tokens) == (1000, 200)
    # 100 * 1 + 1000 * 0.10 + 200 * 1.25 + 50 * 5 = 700 per million
    assert result.cost_usd == Decimal("0.00070000")
    row = UsageLog.objects.get()
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_used) == (1300, 50, 1350)
    assert (row.cache_read_tokens, row.cache_write_tokens, row.reasoning_tokens) == (1000, 200, 0)


@responses.activate
def test_reasoning_tokens_are_recorded_and_priced_as_output(tenant):
    ProviderConfigFactory(
        tenant=tenant, provider="openai", default_model="o3-mini", api_key="sk-test-fake-key-0001"
    )
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 500,
        "total_tokens": 600,
        "completion_tokens_details": {"reasoning_tokens": 400},
    }
    responses.post(OPENAI_URL, json=openai_reply("42", model="o3-mini-2025-01-31", usage=usage))

    result = LLMService("tenant_123").chat(QUESTION)

    assert result.reasoning_tokens == 400
    # 100 * 1.10 + 500 * 4.40 = 2310 per million
    assert result.cost_usd == Decimal("0.00231000")
    assert UsageLog.objects.get().reasoning_tokens == 400


@responses.activate
def test_anthropic_stream_counts_cache_tokens_on_its_row(haiku_config):
    responses.post(
        ANTHROPIC_URL,
        body=anthropic_stream(
            [("text", ["Hi"])],
            "end_turn",
            usage_in={**ANTHROPIC_CACHED_USAGE, "output_tokens": 1},
            model=HAIKU,
        ),
        content_type="text/event-stream",
    )

    stream = LLMService("tenant_123").stream_chat(QUESTION)
    events = list(stream)

    result = events[-1].result
    assert result is stream.result and result.content == "Hi"
    assert (result.prompt_tokens, result.cache_read_tokens, result.cache_write_tokens) == (
        1300,
        1000,
        200,
    )
    # the final output count (20) from message_delta: 100 + 100 + 250 + 20 * 5 = 550
    assert result.cost_usd == Decimal("0.00055000")
    row = UsageLog.objects.get()
    assert (row.cache_read_tokens, row.cache_write_tokens, row.completion_tokens) == (1000, 200, 20)


@responses.activate
def test_openai_stream_counts_cached_tokens_on_its_row(openai_config):
    responses.post(
        OPENAI_URL,
        body=sse(
            [
                {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {"choices": [], "usage": OPENAI_CACHED_USAGE},
                "[DONE]",
            ]
        ),
        content_type="text/event-stream",
    )

    stream = LLMService("tenant_123").stream_chat(QUESTION)
    list(stream)

    assert stream.result.cache_read_tokens == 400
    assert stream.result.cost_usd == Decimal("0.00018000")
    assert UsageLog.objects.get().cache_read_tokens == 400


@responses.activate
def test_generate_completion_still_returns_a_completion_result(openai_config):
    responses.post(OPENAI_URL, json=openai_reply())

    result = LLMService("tenant_123").generate_completion("Hi")

    assert type(result) is CompletionResult
    assert "tool_calls" not in result.as_dict()
    assert UsageLog.objects.get().cache_read_tokens == 0


@responses.activate
def test_chat_result_as_dict_is_json_safe_and_complete(openai_config):
    import json

    responses.post(OPENAI_URL, json=openai_reply("Hi", usage=OPENAI_CACHED_USAGE))

    data = LLMService("tenant_123").chat(QUESTION).as_dict()

    json.dumps(data)
    assert {
        "content",
        "tool_calls",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "usage_log_id",
        "error",
    } <= set(data)
    assert data["cost_usd"] == "0.00018000"


@responses.activate
def test_usage_logs_api_shows_the_token_details(haiku_config, tenant_client):
    responses.post(
        ANTHROPIC_URL,
        json=anthropic_reply(
            [{"type": "text", "text": "Hi"}], usage=ANTHROPIC_CACHED_USAGE, model=HAIKU
        ),
    )
    LLMService("tenant_123").chat(QUESTION)

    (row,) = tenant_client.get("/api/llm/usage/logs").json()["results"]

    assert (row["prompt_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        1300,
        1000,
        200,
    )
    assert row["reasoning_tokens"] == 0
