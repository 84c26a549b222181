"""What a call cost, in USD, from the maintained `genai-prices` data set (SPEC §5).

A config can override the price in its `metadata`:

    {"pricing": {"input_per_mtok": "0.15", "output_per_mtok": "0.60",
                 "cached_input_per_mtok": "0.075", "cache_write_per_mtok": "0.1875",
                 "models": {"gpt-4o": {"input_per_mtok": "2.50", "output_per_mtok": "10"}}}}

Prices are USD per million tokens (numbers or decimal strings). An entry under `models`
(matched on the requested or the reported model name) wins over the flat prices;
`cached_input_per_mtok` and `cache_write_per_mtok` default to the input price.
`input_per_mtok` and `output_per_mtok` are both required for an override to apply.
`local` is free unless overridden. An unknown price is None, never a guess.

Prices are bounded (MAX_PRICE_PER_MTOK, checked when a config is saved and again when
used), and so is a call's cost (MAX_CALL_COST_USD): a cost beyond it, or one that cannot
be computed, is None and logged. Computing a cost never raises, so a tenant's price can
never cost a call its usage row, and every cost fits `UsageLog.cost_usd` (14 digits, 8
after the point) on SQLite and PostgreSQL, also summed over a build's 20 calls.
"""

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

from ..providers.base import TokenUsage

logger = logging.getLogger(__name__)

# Our provider names → genai-prices provider ids.
PRICE_PROVIDER_IDS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "groq": "groq",
    "gemini": "google",
    "mistral": "mistral",
    "azure": "azure",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "together": "together",
    "fireworks": "fireworks",
    "xai": "x-ai",
}
FREE_PROVIDERS = frozenset({"local", "ollama", "vllm"})  # self-hosted
MTOK = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.00000001")  # UsageLog.cost_usd has 8 decimal places
ZERO = Decimal(0)
# No model is priced near this (the dearest list prices are ~100-600 USD per Mtok).
MAX_PRICE_PER_MTOK = Decimal(10_000)
# 1M tokens at the highest price; far below the column's 999 999.99999999.
MAX_CALL_COST_USD = Decimal(10_000)

OVERRIDE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
)


def cost_usd(
    provider: str,
    model: str | None,
    usage: TokenUsage | None,
    *,
    metadata: Mapping | None = None,
    reported_model: str | None = None,
) -> Decimal | None:
    """The cost of `usage` on `model`, or None when the price (or the usage) is unknown.

    Never raises: the provider has answered, and the call's usage row must be written.
    """
    try:
        cost = _cost_usd(provider, model, usage, metadata, reported_model)
    except Exception:
        logger.exception("cost of a %s/%s call could not be computed", provider, model)
        return None
    if cost is not None and not (cost.is_finite() and ZERO <= cost <= MAX_CALL_COST_USD):
        logger.warning(
            "cost of a %s/%s call out of range (%s USD); recorded as unknown",
            provider,
            model,
            cost,
        )
        return None
    return cost


def _cost_usd(provider, model, usage, metadata, reported_model) -> Decimal | None:
    override = pricing_override(metadata, (model, reported_model))
    if override is None and provider in FREE_PROVIDERS:
        return ZERO
    if usage is None:
        return None
    if override is not None:
        return _quantize(_cost_from_override(usage, override))
    provider_id = PRICE_PROVIDER_IDS.get(provider)
    if provider_id is None:
        return None
    # The reported model is usually the dated snapshot actually used; try it first.
    for name in dict.fromkeys(n for n in (reported_model, model) if n):
        price = _model_price(provider_id, name, int(time.time() // PRICE_CACHE_SECONDS))
        if price is None:
            continue
        fast = _linear_cost(price, usage)
        if fast is not None:
            return _quantize(fast)
        try:
            calculation = calc_price(
                Usage(
                    # genai-prices counts cached input inside input_tokens.
                    input_tokens=usage.prompt_tokens,
                    output_tokens=usage.completion_tokens,
                    cache_read_tokens=usage.cached_prompt_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    # Part of output_tokens; priced apart where the data set says so.
                    output_reasoning_tokens=usage.reasoning_tokens,
                ),
                name,
                provider_id=provider_id,
            )
        except LookupError:
            continue
        except Exception:  # the data set's own bugs must not fail a call
            logger.exception("genai-prices failed for %s/%s", provider, name)
            return None
        return _quantize(calculation.total_price)
    return None


PRICE_CACHE_SECONDS = 3600  # prices in the data set change on dates, never within an hour
TOKEN_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


@lru_cache(maxsize=1024)
def _model_price(provider_id: str, model: str, _hour: int):
    """The data set's current ModelPrice for a model, None when it has none (cached)."""
    try:
        _, info = get_snapshot().find_provider_model(model, None, provider_id, None)
        return info.get_prices(datetime.now(UTC))
    except LookupError:
        return None
    except Exception:  # the data set's own bugs must not fail a call
        logger.exception("genai-prices lookup failed for %s/%s", provider_id, model)
        return None


def _linear_cost(price, usage: TokenUsage) -> Decimal | None:
    """Plain per-token prices computed directly (calc_price's generic engine costs ~0.15 ms
    a call); None when the price has tiers or parts this shortcut does not model."""
    values = price.__dict__
    for key, value in values.items():
        if value is None or "search" in key:  # searches: never reported by these calls
            continue
        if key not in TOKEN_PRICE_KEYS or not isinstance(value, Decimal):
            return None
    input_price, output_price = values.get("input_mtok"), values.get("output_mtok")
    cache_read, cache_write = values.get("cache_read_mtok"), values.get("cache_write_mtok")
    if input_price is None or output_price is None:
        return None
    if (usage.cached_prompt_tokens and cache_read is None) or (
        usage.cache_write_tokens and cache_write is None
    ):
        return None
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_write_tokens
    total = (
        max(uncached, 0) * input_price
        + usage.cached_prompt_tokens * (cache_read or ZERO)
        + usage.cache_write_tokens * (cache_write or ZERO)
        + usage.completion_tokens * output_price
    )
    return total / MTOK


def pricing_override(metadata: Mapping | None, models=()) -> dict[str, Decimal] | None:
    """The config's price override for one of `models`, parsed; None when there is none."""
    pricing = (metadata or {}).get("pricing") if isinstance(metadata, Mapping) else None
    if not isinstance(pricing, Mapping):
        return None
    per_model = pricing.get("models")
    if isinstance(per_model, Mapping):
        for name in models:
            if name and isinstance(per_model.get(name), Mapping):
                return _parse_prices(per_model[name])
    return _parse_prices(pricing)


def validate_pricing(pricing) -> None:
    """Raise ValueError unless `pricing` is a valid `metadata["pricing"]` value."""
    if not isinstance(pricing, Mapping):
        raise ValueError("pricing must be an object.")
    entries = [pricing]
    if "models" in pricing:
        if not isinstance(pricing["models"], Mapping):
            raise ValueError("pricing.models must be an object of model name → prices.")
        entries += list(pricing["models"].values())
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("Each price entry must be an object.")
        for name in OVERRIDE_FIELDS:
            if name in entry and _decimal(entry[name]) is None:
                raise ValueError(
                    f"{name} must be a number from 0 to {MAX_PRICE_PER_MTOK} "
                    f"(USD per million tokens), got {entry[name]!r}."
                )


def _parse_prices(entry: Mapping) -> dict[str, Decimal] | None:
    prices = {name: _decimal(entry.get(name)) for name in OVERRIDE_FIELDS}
    if prices["input_per_mtok"] is None or prices["output_per_mtok"] is None:
        return None
    prices["cached_input_per_mtok"] = prices["cached_input_per_mtok"] or prices["input_per_mtok"]
    prices["cache_write_per_mtok"] = prices["cache_write_per_mtok"] or prices["input_per_mtok"]
    return prices


def _decimal(value) -> Decimal | None:
    """A price in bounds, or None (also for a price saved before the bound existed)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and ZERO <= number <= MAX_PRICE_PER_MTOK else None


def _cost_from_override(usage: TokenUsage, prices: dict[str, Decimal]) -> Decimal:
    uncached = max(usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached * prices["input_per_mtok"]
        + usage.cached_prompt_tokens * prices["cached_input_per_mtok"]
        + usage.cache_write_tokens * prices["cache_write_per_mtok"]
        + usage.completion_tokens * prices["output_per_mtok"]
    )
    return total / MTOK


def _quantize(value: Decimal) -> Decimal | None:
    value = Decimal(value)
    if not value.is_finite() or abs(value) > MAX_CALL_COST_USD:
        return value  # cost_usd() refuses it; quantizing a huge value would raise
    return value.quantize(CENT_FRACTION)
