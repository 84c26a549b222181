"""Admission: reserve a call's worst case before it runs, settle it to its actual usage after.

The interface the engine uses (sync and async paths alike) is two functions:

    admission = admit(tenant_id, provider=…, model=…, messages=…, max_tokens=…, metadata=…)
    if admission is not None and admission.error: …refuse (no provider call)…
    …call the provider…
    settle(admission, tokens=…, cost=…)        # always, success or failure

`admit` returns None for a tenant without limits when the default concurrency cap is off:
then nothing at all happens (a dict lookup in the per-process limits cache). A tenant
without its own `max_concurrent` is held to LLM_DEFAULT_MAX_CONCURRENT per process, in
memory. Everything else goes through the shared backend (database or Redis) in one
atomic step each way.
"""

import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from ..errors import ErrorType, ProviderError
from ..providers.base import TokenUsage
from ..usage.pricing import cost_usd
from . import clock
from .backends import get_backend
from .backends.base import Counters, Reservation
from .policy import (
    Limits,
    Windows,
    estimate_prompt_tokens,
    from_units,
    limits_for,
    reserved_completion_tokens,
    to_units,
    windows,
)

logger = logging.getLogger(__name__)

# Concurrency frees up when some call in flight ends, which nobody can know in advance.
CONCURRENCY_RETRY_AFTER = 1.0


@dataclass
class Admission:
    """One call's admission: its hold (to settle), or the refusal, and the counters seen."""

    tenant_id: str
    limits: Limits | None
    hold_id: object = None
    error: ProviderError | None = None
    counters: Counters | None = None
    windows: Windows | None = None
    reserved_tokens: int = 0
    reserved_cost: int = 0
    limit: str | None = None  # which limit refused it
    local_slot: bool = False
    settled: bool = False
    backend: object = field(default=None, repr=False)
    finalizer: object = field(default=None, repr=False, compare=False)

    @property
    def admitted(self) -> bool:
        return self.error is None

    def usage_metadata(self) -> dict:
        """What the call's usage row says about its admission."""
        if self.error is not None:
            return {"limit": self.limit, "admitted": False}
        if self.hold_id is None:
            return {}
        return {
            "reserved_tokens": self.reserved_tokens,
            "reserved_usd": str(from_units(self.reserved_cost)),
        }

    def headers(self) -> dict[str, str]:
        """`x-ratelimit-*` (SPEC §14) for the tenant's request and token limits."""
        return rate_limit_headers(self.limits, self.counters, self.windows)


def rate_limit_headers(limits: Limits | None, counters: Counters | None, w: Windows | None):
    if limits is None or counters is None or w is None:
        return {}
    headers = {}
    reset = duration(w.minute_ends - w.now)
    if limits.requests_per_minute is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(
            max(0, limits.requests_per_minute - counters.minute_requests)
        )
        headers["x-ratelimit-reset-requests"] = reset
    if limits.tokens_per_minute is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(
            max(0, limits.tokens_per_minute - counters.minute_tokens)
        )
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def headers_for_tenant(tenant_id: str) -> dict[str, str]:
    """The `x-ratelimit-*` headers of a tenant's answer that made no admission (a 400…).

    No query for a tenant without request or token limits.
    """
    limits = limits_for(tenant_id)
    if limits is None or (limits.requests_per_minute is None and limits.tokens_per_minute is None):
        return {}
    w = windows(clock.now())
    return rate_limit_headers(limits, get_backend().counters(tenant_id, w), w)


def needs_headers(tenant_id) -> bool:
    """False when this process knows (no query) that the tenant has no request or token
    limit, so its answers carry no `x-ratelimit-*` headers; True when it must look."""
    from .policy import cached_policy

    policy = cached_policy(tenant_id)
    if policy is None:
        return True
    limits = policy.limits
    return limits is not None and (
        limits.requests_per_minute is not None or limits.tokens_per_minute is not None
    )


def duration(seconds: float) -> str:
    """OpenAI's reset format ("12s", "1m5s"), rounded up to whole seconds."""
    whole = max(0, math.ceil(seconds))
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


# --- The default per-process concurrency cap ------------------------------------------------

_local_lock = threading.Lock()
_local_inflight: dict[str, int] = {}


def _take_local_slot(tenant_id: str) -> bool:
    cap = int(settings.LLM_DEFAULT_MAX_CONCURRENT or 0)
    with _local_lock:
        current = _local_inflight.get(tenant_id, 0)
        if current >= cap:
            return False
        _local_inflight[tenant_id] = current + 1
        return True


def _release_local_slot(tenant_id: str) -> None:
    with _local_lock:
        current = _local_inflight.get(tenant_id, 0) - 1
        if current > 0:
            _local_inflight[tenant_id] = current
        else:
            _local_inflight.pop(tenant_id, None)


# --- admit / settle --------------------------------------------------------------------------


def admit(
    tenant_id: str,
    *,
    provider: str,
    model: str | None,
    messages,
    max_tokens: int | None,
    metadata: dict | None,
    policy=None,
    completion_tokens: int | None = None,
) -> Admission | None:
    """Reserve one call's worst case for `tenant_id`; None when there is nothing to do.

    `policy`: the tenant's policy as the caller already holds it (not looked up again).
    `completion_tokens`: the answer's length when known (0 for embeddings), instead of
    max_tokens or the configured cap.
    """
    limits = policy.limits if policy is not None else limits_for(tenant_id)
    local = (limits is None or limits.max_concurrent is None) and bool(
        settings.LLM_DEFAULT_MAX_CONCURRENT
    )
    if limits is None and not local:
        return None
    admission = Admission(tenant_id=tenant_id, limits=limits)
    if local:
        if not _take_local_slot(tenant_id):
            cap = settings.LLM_DEFAULT_MAX_CONCURRENT
            admission.limit = "max_concurrent"
            admission.error = ProviderError(
                ErrorType.RATE_LIMITED,
                f"Too many concurrent calls for this tenant (at most {cap} at a time in "
                "one server process).",
                status_code=429,
                retry_after=CONCURRENCY_RETRY_AFTER,
            )
            return admission
        admission.local_slot = True
    if limits is None:
        return admission
    try:
        _reserve(
            admission, limits, provider, model, messages, max_tokens, metadata, completion_tokens
        )
    except Exception:
        # Fail closed: a tenant with limits is never served unlimited because the
        # backend (database or Redis) is unreachable.
        logger.exception("limits backend failed; refusing the call of tenant %s", tenant_id)
        admission.hold_id = None
        admission.limit = "backend"
        admission.error = ProviderError(
            ErrorType.CONFIGURATION,
            "The tenant's limits cannot be checked right now (the limits backend is "
            "unavailable); the call was not made.",
        )
    if admission.error is not None and admission.local_slot:
        _release_local_slot(tenant_id)
        admission.local_slot = False
    _guard(admission)
    _maybe_schedule_reconciliation()
    return admission


def _guard(admission: Admission) -> None:
    """Release the slot and hold of an admission dropped without settle (an exception
    between admit and the call's end): when it is garbage-collected, not at hold expiry."""
    if admission.error is not None or not (admission.local_slot or admission.hold_id):
        return
    admission.finalizer = weakref.finalize(
        admission,
        _abandoned,
        admission.tenant_id,
        admission.local_slot,
        admission.backend if admission.hold_id is not None else None,
        admission.hold_id,
    )


def _abandoned(tenant_id, local_slot, backend, hold_id) -> None:
    if local_slot:
        _release_local_slot(tenant_id)
    if backend is not None:
        try:
            backend.settle(tenant_id, hold_id, 0, 0, windows(clock.now()))
        except Exception:
            logger.warning("could not release an abandoned hold of tenant %s", tenant_id)


def _reserve(  # noqa: PLR0913 (the call's facts, as admit received them)
    admission, limits, provider, model, messages, max_tokens, metadata, completion_tokens
) -> None:
    prompt = estimate_prompt_tokens(messages)
    completion = (
        reserved_completion_tokens(max_tokens, metadata)
        if completion_tokens is None
        else completion_tokens
    )
    tokens = prompt + completion
    cost = 0
    if limits.money:
        price = cost_usd(
            provider,
            model,
            TokenUsage(prompt_tokens=prompt, completion_tokens=completion),
            metadata=metadata,
        )
        if price is None:
            admission.limit = "usd_per_day" if limits.usd_per_day is not None else "usd_per_month"
            admission.error = ProviderError(
                ErrorType.BUDGET_EXCEEDED,
                f"The price of {provider} model {model!r} is unknown, so this tenant's "
                "spending limit cannot be enforced; the operator can set a price in the "
                "config's metadata.pricing.",
                status_code=429,
            )
            return
        cost = to_units(price)
    admission.reserved_tokens, admission.reserved_cost = tokens, cost
    too_big = _larger_than_any_window(limits, tokens, cost)
    if too_big is not None:
        admission.limit, admission.error = too_big
        return
    backend = get_backend()
    admission.backend = backend
    for _ in range(3):
        now = clock.now()
        w = windows(now)
        reservation = Reservation(
            tenant_id=admission.tenant_id,
            tokens=tokens,
            cost=cost,
            expires_at=now + float(settings.LLM_LIMITS_HOLD_SECONDS),
        )
        hold_id, counters = backend.reserve(reservation, limits, w)
        admission.counters, admission.windows = counters, w
        if hold_id is not None:
            admission.hold_id = hold_id
            return
        refusal = refusal_for(limits, counters, tokens, cost, w)
        if refusal is not None:
            admission.limit, admission.error = refusal
            return
        # The counters have room again (a call settled in between): try once more.
    admission.limit = "max_concurrent"
    admission.error = ProviderError(
        ErrorType.RATE_LIMITED,
        "The tenant's limits are contended; retry shortly.",
        status_code=429,
        retry_after=CONCURRENCY_RETRY_AFTER,
    )


def _larger_than_any_window(limits: Limits, tokens: int, cost: int):
    if limits.tokens_per_minute is not None and tokens > limits.tokens_per_minute:
        return "tokens_per_minute", ProviderError(
            ErrorType.RATE_LIMITED,
            f"This call reserves {tokens} tokens (prompt estimate + max_tokens), more than the "
            f"tenant's {limits.tokens_per_minute} tokens per minute; lower max_tokens.",
            status_code=429,
        )
    for name, cap in (("usd_per_day", limits.usd_per_day), ("usd_per_month", limits.usd_per_month)):
        if cap is not None and cost > cap:
            return name, ProviderError(
                ErrorType.BUDGET_EXCEEDED,
                f"This call's worst case (${from_units(cost)}) is more than the tenant's "
                f"whole {name.replace('_', ' ')} budget (${from_units(cap)}); lower max_tokens.",
                status_code=429,
            )
    return None


def refusal_for(limits: Limits, counters: Counters, tokens: int, cost: int, w: Windows):
    """(limit name, error) for the limits `counters` leave no room under, or None."""
    failing = []  # (name, retry_after, is_budget, message)
    minute_wait = w.minute_ends - w.now
    if (
        limits.requests_per_minute is not None
        and counters.minute_requests + 1 > limits.requests_per_minute
    ):
        failing.append(
            (
                "requests_per_minute",
                minute_wait,
                False,
                f"{limits.requests_per_minute} requests per minute",
            )
        )
    if (
        limits.tokens_per_minute is not None
        and counters.minute_tokens + tokens > limits.tokens_per_minute
    ):
        failing.append(
            (
                "tokens_per_minute",
                minute_wait,
                False,
                f"{limits.tokens_per_minute} tokens per minute",
            )
        )
    if limits.usd_per_day is not None and counters.day_cost + cost > limits.usd_per_day:
        failing.append(
            ("usd_per_day", w.day_ends - w.now, True, f"${from_units(limits.usd_per_day)} per day")
        )
    if limits.usd_per_month is not None and counters.month_cost + cost > limits.usd_per_month:
        failing.append(
            (
                "usd_per_month",
                w.month_ends - w.now,
                True,
                f"${from_units(limits.usd_per_month)} per month",
            )
        )
    if limits.max_concurrent is not None and counters.inflight + 1 > limits.max_concurrent:
        failing.append(
            (
                "max_concurrent",
                CONCURRENCY_RETRY_AFTER,
                False,
                f"{limits.max_concurrent} concurrent calls",
            )
        )
    if not failing:
        return None
    # The call can go when every failing limit has room again: the longest wait.
    name, wait, _, _ = max(failing, key=lambda f: f[1])
    budget = any(f[2] for f in failing)
    what = ", ".join(f[3] for f in failing)
    wait = max(wait, 0.001)
    error = ProviderError(
        ErrorType.BUDGET_EXCEEDED if budget else ErrorType.RATE_LIMITED,
        f"The tenant's limit is reached ({what}); retry in {math.ceil(wait)} s.",
        status_code=429,
        retry_after=round(wait, 3),
    )
    if budget:
        name = next(f[0] for f in failing if f[2])
    return name, error


def settle(admission: Admission | None, *, tokens: int = 0, cost: Decimal | None = None) -> None:
    """Replace the reservation by the actual usage (once; a no-op for refusals and None).

    Never raises: the call has happened and its usage row is written; a failed settlement
    leaves the reservation in place until the hold expires or reconciliation runs.
    """
    if admission is None or admission.settled:
        return
    admission.settled = True
    if admission.finalizer is not None:
        admission.finalizer.detach()
    if admission.local_slot:
        _release_local_slot(admission.tenant_id)
    if admission.hold_id is None or admission.backend is None:
        return
    try:
        admission.backend.settle(
            admission.tenant_id,
            admission.hold_id,
            max(0, int(tokens or 0)),
            to_units(cost) if cost is not None and cost > 0 else 0,
            windows(clock.now()),
        )
    except Exception:
        logger.exception(
            "could not settle the limits hold of tenant %s; it is released at its expiry",
            admission.tenant_id,
        )


# --- Automatic reconciliation ------------------------------------------------------------------

_last_reconcile_check = [0.0]
RECONCILE_ENQUEUED_KEY = "llm_limits_reconcile_enqueued"


def _maybe_schedule_reconciliation() -> None:
    period = float(settings.LLM_LIMITS_RECONCILE_SECONDS or 0)
    if period <= 0:
        return
    monotonic = time.monotonic()
    if monotonic - _last_reconcile_check[0] < period:
        return
    _last_reconcile_check[0] = monotonic
    try:
        from django.core.cache import cache
        from django.db import transaction

        if cache.add(RECONCILE_ENQUEUED_KEY, 1, timeout=period):
            transaction.on_commit(_enqueue_reconciliation, robust=True)
    except Exception:
        logger.warning("could not schedule the limits reconciliation", exc_info=True)


def _enqueue_reconciliation() -> None:
    from .tasks import reconcile_llm_limits

    reconcile_llm_limits.enqueue()
