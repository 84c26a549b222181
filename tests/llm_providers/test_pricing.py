"""Cost from genai-prices, per-config overrides, local is free, unknown is None (SPEC §5)."""

from decimal import Decimal

import pytest

from llm_providers.providers.base import TokenUsage
from llm_providers.usage.pricing import cost_usd, validate_pricing

MILLION_EACH = TokenUsage(prompt_tokens=1_000_000, completion_tokens=1_000_000)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-mini", "0.75"),  # 0.15 + 0.60
        ("openai", "gpt-4o", "12.5"),  # 2.50 + 10.00
        ("groq", "llama-3.1-8b-instant", "0.13"),  # 0.05 + 0.08
    ],
)
def test_price_comes_from_the_maintained_data_set(provider, model, expected):
    assert cost_usd(provider, model, MILLION_EACH) == Decimal(expected)


def test_cached_prompt_tokens_are_charged_at_the_cached_rate():
    usage = TokenUsage(prompt_tokens=1_000_000, completion_tokens=0, cached_prompt_tokens=500_000)
    # gpt-4o-mini: 500k at 0.15 + 500k at 0.075
    assert cost_usd("openai", "gpt-4o-mini", usage) == Decimal("0.1125")


@pytest.mark.parametrize(
    ("provider", "model", "reported", "usage", "expected"),
    [
        # Worked out by hand from the data set's per-million prices, so that a wrong token
        # mapping (cached input counted twice, say) cannot pass on both sides (review T5).
        # claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 cache write, $5 output;
        # prompt_tokens holds every input token: 500k uncached + 400k read + 100k written.
        (
            "anthropic",
            "claude-haiku-4-5",
            None,
            TokenUsage(
                prompt_tokens=1_000_000,
                completion_tokens=200_000,
                cached_prompt_tokens=400_000,
                cache_write_tokens=100_000,
            ),
            "1.665",  # 0.50 + 0.04 + 0.125 + 1.00
        ),
        # gpt-4o-mini, reported as its dated snapshot: $0.15 input, $0.075 cached, $0.60 out.
        (
            "openai",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            TokenUsage(
                prompt_tokens=2_000_000, completion_tokens=100_000, cached_prompt_tokens=1_000_000
            ),
            "0.285",  # 0.15 + 0.075 + 0.06
        ),
        # gpt-4o: $2.50 input, $10 output; a small call, rounded to 8 decimal places.
        (
            "openai",
            "gpt-4o",
            None,
            TokenUsage(prompt_tokens=1234, completion_tokens=567),
            "0.008755",
        ),
    ],
)
def test_known_costs_worked_out_by_hand(provider, model, reported, usage, expected):
    assert cost_usd(provider, model, usage, reported_model=reported) == Decimal(expected)


def test_dated_reported_model_is_priced():
    assert cost_usd(
        "openai", "gpt-4o-mini", MILLION_EACH, reported_model="gpt-4o-mini-2024-07-18"
    ) == Decimal("0.75")


def test_unknown_model_has_no_price():
    assert cost_usd("openai", "my-fine-tune-that-does-not-exist", MILLION_EACH) is None


def test_missing_usage_has_no_price():
    assert cost_usd("openai", "gpt-4o-mini", None) is None


def test_local_is_free_unless_overridden():
    assert cost_usd("local", "gemma-3-270m", MILLION_EACH) == Decimal("0")
    metadata = {"pricing": {"input_per_mtok": "0.01", "output_per_mtok": 0.02}}
    assert cost_usd("local", "gemma-3-270m", MILLION_EACH, metadata=metadata) == Decimal("0.03")


def test_config_override_wins_over_the_data_set():
    metadata = {
        "pricing": {
            "input_per_mtok": "1",
            "output_per_mtok": "2",
            "cached_input_per_mtok": "0.5",
        }
    }
    usage = TokenUsage(prompt_tokens=300, completion_tokens=100, cached_prompt_tokens=100)
    # 200 * 1 + 100 * 0.5 + 100 * 2 = 450 per million
    assert cost_usd("openai", "gpt-4o", usage, metadata=metadata) == Decimal("0.00045000")


def test_per_model_override_wins_over_the_flat_override():
    metadata = {
        "pricing": {
            "input_per_mtok": 1,
            "output_per_mtok": 1,
            "models": {"gpt-4o": {"input_per_mtok": 10, "output_per_mtok": 10}},
        }
    }
    assert cost_usd("openai", "gpt-4o", MILLION_EACH, metadata=metadata) == Decimal("20")
    assert cost_usd("openai", "gpt-4.1", MILLION_EACH, metadata=metadata) == Decimal("2")


def test_incomplete_override_is_ignored_not_guessed():
    metadata = {"pricing": {"input_per_mtok": "1"}}
    assert cost_usd("openai", "unknown-model-x", MILLION_EACH, metadata=metadata) is None


def test_validate_pricing_rejects_negative_and_non_numbers():
    validate_pricing({"input_per_mtok": "0.1", "output_per_mtok": 2})
    for bad in ({"input_per_mtok": -1}, {"output_per_mtok": "abc"}, {"models": []}, []):
        with pytest.raises(ValueError):
            validate_pricing(bad)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "o3-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("groq", "llama-3.3-70b-versatile"),
        ("groq", "llama-3.1-8b-instant"),
    ],
)
@pytest.mark.parametrize(
    "usage",
    [
        TokenUsage(prompt_tokens=1234, completion_tokens=567),
        TokenUsage(prompt_tokens=5000, completion_tokens=10, cached_prompt_tokens=4000),
        TokenUsage(prompt_tokens=300_000, completion_tokens=10, cache_write_tokens=1000),
    ],
)
def test_fast_path_agrees_with_genai_prices(provider, model, usage):
    from genai_prices import Usage, calc_price

    reference = calc_price(
        Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cached_prompt_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model,
        provider_id=provider,
    ).total_price
    assert cost_usd(provider, model, usage) == reference.quantize(Decimal("0.00000001"))
