"""Admission across real processes (tests/support/limits_worker.py), on each backend.

The workers call LLMService against the fake provider with the test database (SQLite
file or PostgreSQL) and, for Redis, a real redis-server; nothing is mocked in them but
the admission clock, shifted where a test needs a fresh minute.
"""

import json
import math
import signal
import time
from decimal import Decimal

import pytest

from llm_providers import limits
from llm_providers.errors import ErrorType
from llm_providers.limits.backends import get_backend
from llm_providers.limits.policy import to_units, windows
from llm_providers.models import UsageLog

from .conftest import set_limits

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def cache_url(backend_name, request):
    return request.getfixturevalue("redis_server") if backend_name == "redis" else None


def fresh_minute_shift() -> float:
    """A clock shift that puts "now" 1 s into a minute: the whole test fits in its window."""
    now = time.time()
    return math.ceil(now / 60) * 60 + 1 - now


def test_64_concurrent_calls_against_a_budget_for_10_admit_at_most_10(
    tenant, priced_config, workers, cache_url, backend_name
):
    # Each call reserves $0.11 (estimate) and costs $0.08: a budget of $0.80 pays for 10 calls.
    set_limits(tenant, usd_per_day=Decimal("0.80"))
    pool = workers(cache_url=cache_url, LLM_LIMITS_BACKEND=backend_name)
    procs = pool.start({"mode": "calls", "tenant": tenant.pk, "calls": 8, "threads": 8}, 8)
    pool.go(procs)
    results = pool.results(procs)
    assert len(results) == 64
    admitted = [r for r in results if r["success"]]
    refused = [r for r in results if not r["success"]]
    assert 1 <= len(admitted) <= 10
    assert {r["error"] for r in refused} == {ErrorType.BUDGET_EXCEEDED}
    rows = UsageLog.objects.filter(tenant=tenant)
    assert rows.count() == 64
    spent = sum(r.cost_usd for r in rows.filter(success=True))
    assert spent == Decimal("0.08") * len(admitted) <= Decimal("0.80")
    # Counters equal the usage rows once every call has settled.
    w = windows(limits.clock.now())
    counters = get_backend().counters(tenant.pk, w)
    assert counters.day_cost == to_units(spent)
    assert counters.inflight == 0


def test_30_per_minute_admits_exactly_30_across_processes_and_retry_after_is_the_reset(
    tenant, priced_config, workers, cache_url, backend_name, fake_clock
):
    set_limits(tenant, requests_per_minute=30)
    shift = fresh_minute_shift()
    pool = workers(cache_url=cache_url, LLM_LIMITS_BACKEND=backend_name)
    job = {"mode": "calls", "tenant": tenant.pk, "calls": 12, "threads": 3}
    procs = pool.start(job, 4, LIMITS_CLOCK_SHIFT=shift)
    pool.go(procs)
    results = pool.results(procs)
    assert len(results) == 48
    assert sum(r["success"] for r in results) == 30
    refused = [r for r in results if not r["success"]]
    assert {r["error"] for r in refused} == {ErrorType.RATE_LIMITED}
    window_end = (results[0]["clock"] // 60 + 1) * 60
    for r in refused:
        # Decided between the call's start and end: the seconds left then (to the ms).
        assert (
            window_end - r["clock"] - 0.001 <= r["retry_after"] <= window_end - r["before"] + 0.001
        )
    # The window really frees up at its end: refused just before, admitted just after.
    kwargs = dict(provider="local", model="m", messages=[], max_tokens=1, metadata={})
    fake_clock.now = window_end - 0.5
    assert limits.admit(tenant.pk, **kwargs).error.type == ErrorType.RATE_LIMITED
    fake_clock.now = window_end + 0.01
    admission = limits.admit(tenant.pk, **kwargs)
    assert admission.admitted
    limits.settle(admission)


def test_a_killed_process_hold_is_released_after_its_expiry(
    tenant, priced_config, workers, cache_url, backend_name, fake_clock, settings
):
    settings.LLM_LIMITS_HOLD_SECONDS = 120
    set_limits(tenant, max_concurrent=1)
    pool = workers(
        cache_url=cache_url, LLM_LIMITS_BACKEND=backend_name, LLM_LIMITS_HOLD_SECONDS=120
    )
    (proc,) = pool.start({"mode": "hold", "tenant": tenant.pk})
    pool.go([proc])
    assert json.loads(proc.stdout.readline()) == {"held": True}
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kwargs = dict(provider="local", model="m", messages=[], max_tokens=1, metadata={})
    fake_clock.now = time.time()
    refused = limits.admit(tenant.pk, **kwargs)
    assert refused.error.type == ErrorType.RATE_LIMITED and refused.limit == "max_concurrent"
    fake_clock.now = time.time() + 121  # past the dead hold's expiry
    admission = limits.admit(tenant.pk, **kwargs)
    assert admission.admitted
    limits.settle(admission)
    assert get_backend().counters(tenant.pk, windows(fake_clock.now)).inflight == 0


def test_breaker_opened_in_one_process_is_respected_by_others_and_fallback_serves(
    tenant, upstream, httpserver, workers, cache_url, backend_name, settings, tmp_path
):
    from tests.factories import ProviderConfigFactory

    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "down"}}, status=500
    )
    failing = ProviderConfigFactory(
        tenant=tenant, provider="local", base_url=httpserver.url_for("/v1"), api_key=""
    )
    spare = ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        base_url=upstream.base_url,
        api_key="",
        is_active=False,
        fallback_order=1,
    )
    shared_cache = cache_url or f"filecache://{tmp_path / 'cache'}"
    pool = workers(cache_url=shared_cache, LLM_BREAKER_FAILURES=5, LLM_BREAKER_COOLDOWN=300)
    first = pool.start({"mode": "calls", "tenant": tenant.pk, "calls": 5})
    pool.go(first)
    assert all(r["success"] for r in pool.results(first))  # each served by the fallback
    assert len(httpserver.log) == 5
    # Another process: the failing config is skipped without a request, the spare serves.
    second = pool.start({"mode": "calls", "tenant": tenant.pk, "calls": 3})
    pool.go(second)
    assert all(r["success"] for r in pool.results(second))
    assert len(httpserver.log) == 5
    rows = list(UsageLog.objects.filter(tenant=tenant).order_by("id"))
    assert len(rows) == 16  # 5 × (failure + fallback), 3 × (skipped + fallback)
    skipped = [r for r in rows[10:] if r.provider_config_id == failing.pk]
    assert [r.error_type for r in skipped] == [ErrorType.OVERLOADED] * 3
    assert all(r.provider_config_id == spare.pk for r in rows[11::2])
    # This process sees the same state through the shared cache.
    import environ

    settings.CACHES = {"default": environ.Env.cache_url_config(shared_cache)}
    from llm_providers.limits import breaker

    assert breaker.state(str(failing.pk))["state"] == "open"
