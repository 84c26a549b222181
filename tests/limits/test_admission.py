"""Admission in one process: refusals, exact Retry-After, settlement, expiry, reconciliation."""

from decimal import Decimal

import pytest
from django.db.models import F

from llm_providers import limits
from llm_providers.engine.service import LLMService
from llm_providers.errors import ErrorType
from llm_providers.limits.backends import get_backend
from llm_providers.limits.policy import to_units, windows
from llm_providers.limits.reconcile import reconcile_tenant
from llm_providers.models import LimitCounters, UsageLog

from .conftest import set_limits

pytestmark = pytest.mark.django_db


def counters(tenant):
    return get_backend().counters(tenant.pk, windows(limits.clock.now()))


def drift(tenant, *, cost: int, inflight: int) -> None:
    backend = get_backend()
    if backend.name == "database":
        LimitCounters.objects.filter(tenant=tenant).update(
            day_cost=F("day_cost") + cost, inflight=F("inflight") + inflight
        )
    else:
        key = backend._keys(tenant.pk)[0]
        backend.client.hincrby(key, "dc", cost)
        backend.client.hincrby(key, "inflight", inflight)


def call(tenant, prompt="hi", max_tokens=2):
    return LLMService(tenant.pk).generate_completion(prompt, max_tokens=max_tokens)


def test_requests_per_minute_admits_exactly_the_limit_and_retry_after_is_the_window_end(
    tenant, priced_config, upstream, fake_clock, backend_name
):
    set_limits(tenant, requests_per_minute=3)
    results = [call(tenant) for _ in range(4)]
    assert [r.success for r in results] == [True, True, True, False]
    refused = results[-1]
    assert refused.error.type == ErrorType.RATE_LIMITED
    assert refused.status_code == 429
    # 17.25 s into the minute: the window frees up 42.75 s later, exactly.
    assert refused.error.retry_after == pytest.approx(42.75, abs=0.001)
    assert len(upstream.kinds()) == 3  # the refusal never reached the provider
    row = UsageLog.objects.get(pk=refused.usage_log_id)
    assert (row.success, row.error_type, row.tokens_used, row.cost_usd) == (
        False,
        "rate_limited",
        0,
        Decimal(0),
    )
    assert row.metadata["limit"] == "requests_per_minute"
    fake_clock.now += 42.74
    assert call(tenant).error.type == ErrorType.RATE_LIMITED
    fake_clock.now += 0.02  # the next minute
    assert call(tenant).success


def test_budget_refusal_settles_to_actual_cost(tenant, priced_config, fake_clock, backend_name):
    # Each call reserves (ceil(2/3) + 8 prompt tokens estimated + 2) = $0.11 and costs $0.08.
    set_limits(tenant, usd_per_day=Decimal("0.30"))
    results = [call(tenant) for _ in range(5)]
    assert [r.success for r in results] == [True, True, True, False, False]
    assert {r.cost_usd for r in results[:3]} == {Decimal("0.08")}
    assert results[3].error.type == ErrorType.BUDGET_EXCEEDED
    # The UTC day ends 86400 - (seconds into the day) later.
    w = windows(fake_clock.now)
    assert results[3].error.retry_after == pytest.approx(w.day_ends - fake_clock.now, abs=0.001)
    assert counters(tenant).day_cost == to_units(Decimal("0.24"))
    assert counters(tenant).month_cost == to_units(Decimal("0.24"))
    assert counters(tenant).inflight == 0


def test_unknown_price_with_a_spending_limit_is_refused(tenant, upstream, fake_clock):
    from tests.factories import ProviderConfigFactory

    ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        base_url=upstream.base_url,
        api_key="",
        metadata={"pricing": {"models": {}}},
    )
    set_limits(tenant, usd_per_month=Decimal("0.05"))
    # local is free: a known price of 0, admitted.
    assert call(tenant).success


def test_a_call_larger_than_the_whole_limit_is_refused_without_retry_after(
    tenant, priced_config, fake_clock
):
    set_limits(tenant, tokens_per_minute=100)
    result = call(tenant, max_tokens=500)
    assert result.error.type == ErrorType.RATE_LIMITED
    assert result.error.retry_after is None
    assert "lower max_tokens" in result.error.message


def test_tokens_per_minute_counts_actual_tokens_after_settling(
    tenant, priced_config, fake_clock, backend_name
):
    set_limits(tenant, tokens_per_minute=40)
    # Reserve 11 (estimate), settle to 8 actual: 4 calls use 32, a fifth needs 11 > 8 left.
    results = [call(tenant) for _ in range(5)]
    assert [r.success for r in results] == [True, True, True, True, False]
    assert counters(tenant).minute_tokens == 32


def test_concurrency_limit_and_expired_hold_release(
    tenant, priced_config, fake_clock, backend_name, settings
):
    settings.LLM_LIMITS_HOLD_SECONDS = 30
    set_limits(tenant, max_concurrent=1)
    kwargs = dict(
        provider="local",
        model="m",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=1,
        metadata={},
    )
    held = limits.admit(tenant.pk, **kwargs)  # a process that dies without settling
    assert held.admitted
    refused = limits.admit(tenant.pk, **kwargs)
    assert refused.error.type == ErrorType.RATE_LIMITED and refused.limit == "max_concurrent"
    fake_clock.now += 29.9
    assert not limits.admit(tenant.pk, **kwargs).admitted
    fake_clock.now += 0.2  # the hold has expired: released on the next admission
    again = limits.admit(tenant.pk, **kwargs)
    assert again.admitted
    limits.settle(again, tokens=0, cost=Decimal(0))
    assert counters(tenant).inflight == 0
    # The dead call's late settlement (if it ever comes) counts its usage but no slot.
    limits.settle(held, tokens=5, cost=Decimal(0))
    assert counters(tenant).inflight == 0
    assert counters(tenant).minute_tokens == 5


def test_tenant_without_limits_makes_no_query(tenant, priced_config, django_assert_num_queries):
    warm = limits.admit(
        tenant.pk, provider="local", model="m", messages=[], max_tokens=1, metadata={}
    )
    limits.settle(warm)
    with django_assert_num_queries(0):
        admission = limits.admit(
            tenant.pk, provider="local", model="m", messages=[], max_tokens=1, metadata={}
        )
        limits.settle(admission)


def test_limits_cache_is_cleared_when_the_row_is_saved(tenant, priced_config, fake_clock):
    assert call(tenant).success  # caches "no limits"
    set_limits(tenant, requests_per_minute=1)
    assert call(tenant).success
    assert call(tenant).error.type == ErrorType.RATE_LIMITED


def test_default_concurrency_cap_per_process(tenant, priced_config, settings):
    settings.LLM_DEFAULT_MAX_CONCURRENT = 2
    kwargs = dict(provider="local", model="m", messages=[], max_tokens=1, metadata={})
    first, second = limits.admit(tenant.pk, **kwargs), limits.admit(tenant.pk, **kwargs)
    third = limits.admit(tenant.pk, **kwargs)
    assert first.admitted and second.admitted
    assert third.error.type == ErrorType.RATE_LIMITED and third.limit == "max_concurrent"
    limits.settle(first)
    fourth = limits.admit(tenant.pk, **kwargs)
    assert fourth.admitted
    limits.settle(third)  # a refusal holds no slot: settling it changes nothing
    limits.settle(second)
    limits.settle(fourth)


def test_reconcile_brings_drifted_counters_back_to_the_usage_rows(
    tenant, priced_config, backend_name
):
    set_limits(tenant, usd_per_day=Decimal("10"), requests_per_minute=1000)
    for _ in range(3):
        assert call(tenant).success
    # Drift: a lost settlement left $50 counted and one call "in flight", without a hold.
    drift(tenant, cost=to_units(Decimal("0.50")), inflight=1)
    assert counters(tenant).day_cost == to_units(Decimal("0.74"))
    before, after = reconcile_tenant(tenant.pk)
    spent = sum(r.cost_usd for r in UsageLog.objects.filter(tenant=tenant, success=True))
    assert after.day_cost == to_units(spent) == to_units(Decimal("0.24"))
    assert counters(tenant).day_cost == to_units(Decimal("0.24"))
    assert counters(tenant).inflight == 0
    assert counters(tenant).minute_requests == 3


def test_stream_is_refused_before_the_first_byte(tenant, priced_config, upstream, fake_clock):
    set_limits(tenant, requests_per_minute=1)
    assert call(tenant).success
    stream = LLMService(tenant.pk).stream_chat([{"role": "user", "content": "hi"}], max_tokens=2)
    assert stream.error.type == ErrorType.RATE_LIMITED
    assert list(stream) == []
    assert stream.result.usage_log_id is not None
    assert len(upstream.kinds()) == 1


def test_a_call_that_raises_after_admission_releases_its_slot_and_hold(
    tenant, upstream, fake_clock, settings, backend_name
):
    """An Anthropic config refuses an unknown message role with ValueError after admission."""
    from tests.factories import ProviderConfigFactory

    settings.LLM_DEFAULT_MAX_CONCURRENT = 1
    ProviderConfigFactory(
        tenant=tenant,
        provider="anthropic",
        default_model="claude-sonnet-4-5",
        api_key="k" * 20,
        metadata={"pricing": {"input_per_mtok": "1", "output_per_mtok": "1"}},
    )
    for _ in range(3):
        with pytest.raises(ValueError):
            LLMService(tenant.pk).chat([{"role": "wizard", "content": "hi"}], max_tokens=5)
    set_limits(tenant, max_concurrent=1, usd_per_day=Decimal("0.01"))
    for _ in range(3):
        with pytest.raises(ValueError):
            LLMService(tenant.pk).chat([{"role": "wizard", "content": "hi"}], max_tokens=5)
    assert counters(tenant).inflight == 0
    assert counters(tenant).day_cost == 0
