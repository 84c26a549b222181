"""Circuit breaker per provider config (SPEC §14), its state in the shared Django cache.

closed → open after LLM_BREAKER_FAILURES transient failures (connection, timeout,
server_error, overloaded, the provider's rate_limit) within LLM_BREAKER_WINDOW seconds;
open → the config is skipped for LLM_BREAKER_COOLDOWN seconds; then half-open: one call
(the probe) goes through; its success closes the breaker, its failure opens it again.

The state is one cache entry per config, read-modify-written: concurrent failures in
several processes can lose a count (the breaker then opens a failure later), never
invent one. The single probe is taken with `cache.add`, atomic on Redis and within one
process; on the default file cache two processes can rarely both probe.

A process that read a config's state as empty (closed, no failure counted) trusts that
for CLEAN_TRUST_SECONDS: calls to a healthy provider then read the shared cache about
once a second per config and process, not twice per call, and the async path asks the
breaker on the event loop without a thread (a cache read is I/O). The price: a breaker
another process opens is honoured here up to that long later, and a success here clears
failures counted elsewhere meanwhile only once the trust has lapsed.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache

from ..errors import ErrorType
from . import clock

logger = logging.getLogger(__name__)

TRANSIENT = frozenset(
    {
        ErrorType.CONNECTION,
        ErrorType.TIMEOUT,
        ErrorType.SERVER_ERROR,
        ErrorType.OVERLOADED,
        ErrorType.RATE_LIMIT,
    }
)
CIRCUIT_OPEN_CODE = "circuit_open"
STATE_KEY = "llm_breaker:{key}"
PROBE_KEY = "llm_breaker_probe:{key}"
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


CLEAN_TRUST_SECONDS = 1.0
_clean_until: dict[str, float] = {}  # key → monotonic time the empty state is trusted until


def known_clean(key: str | None) -> bool:
    """Whether the breaker of `key` is known, without I/O, to be closed with no failure."""
    if key is None or int(settings.LLM_BREAKER_FAILURES) <= 0:
        return True
    until = _clean_until.get(key)
    return until is not None and until > time.monotonic()


def forget_local() -> None:
    """Drop this process's trust in any state it read (tests)."""
    _clean_until.clear()


def _note(key: str, current: dict) -> None:
    if current:
        _clean_until.pop(key, None)
    else:
        if len(_clean_until) > 10_000:
            _clean_until.clear()
        _clean_until[key] = time.monotonic() + CLEAN_TRUST_SECONDS


def breaker_key(resolved) -> str | None:
    if resolved.config is not None:
        return str(resolved.config.pk)
    if resolved.source == "environment":
        return "environment"
    return None


def _get(key: str) -> dict:
    try:
        current = cache.get(STATE_KEY.format(key=key)) or {}
    except Exception:  # a cache outage must not stop calls: the breaker stays closed
        logger.warning("circuit breaker state unreadable for %s", key, exc_info=False)
        _clean_until.pop(key, None)
        return {}
    _note(key, current)
    return current


def _set(key: str, state: dict | None) -> None:
    _clean_until.pop(key, None)  # re-read next time: another process may write it too
    try:
        if state is None:
            cache.delete(STATE_KEY.format(key=key))
        else:
            timeout = float(settings.LLM_BREAKER_WINDOW) + float(settings.LLM_BREAKER_COOLDOWN)
            cache.set(STATE_KEY.format(key=key), state, timeout=max(timeout * 4, 60))
    except Exception:
        logger.warning("circuit breaker state not stored for %s", key, exc_info=False)


def state(key: str) -> dict:
    """{"state", "failures" (in the window), "retry_in" (seconds while open)}."""
    now = clock.now()
    current = _get(key)
    failures = [t for t in current.get("failures", []) if t > now - settings.LLM_BREAKER_WINDOW]
    opened_at = current.get("opened_at")
    if opened_at is None:
        return {"state": CLOSED, "failures": len(failures), "retry_in": None}
    reopen = opened_at + float(settings.LLM_BREAKER_COOLDOWN)
    if now < reopen:
        return {"state": OPEN, "failures": len(failures), "retry_in": round(reopen - now, 3)}
    return {"state": HALF_OPEN, "failures": len(failures), "retry_in": None}


def allow(key: str | None) -> tuple[bool, float | None]:
    """(may a call go to this config now, seconds until it may when not)."""
    if known_clean(key):
        return True, None
    current = state(key)
    if current["state"] == CLOSED:
        return True, None
    if current["state"] == OPEN:
        return False, current["retry_in"]
    # Half-open: exactly one probe; the others wait as if it were still open.
    try:
        took = cache.add(PROBE_KEY.format(key=key), 1, timeout=settings.LLM_BREAKER_COOLDOWN)
    except Exception:
        took = True
    return (True, None) if took else (False, float(settings.LLM_BREAKER_COOLDOWN))


def record_needs_io(key: str | None, error_type: str | None) -> bool:
    """Whether `record(key, error_type)` would read or write the shared cache."""
    if key is None or int(settings.LLM_BREAKER_FAILURES) <= 0:
        return False
    if error_type is None:
        return not known_clean(key)
    return error_type in TRANSIENT


def record(key: str | None, error_type: str | None) -> None:
    """Count a call's outcome: success closes, a transient failure counts (or reopens)."""
    if key is None or int(settings.LLM_BREAKER_FAILURES) <= 0:
        return
    if error_type is None:
        if known_clean(key):
            return  # closed with nothing counted: nothing to clear
        current = _get(key)
        if current:
            _set(key, None)
            if current.get("opened_at") is not None:
                logger.info("circuit breaker of %s closed (the probe succeeded)", key)
                _drop_probe(key)
                _track(key, False)
        return
    if error_type not in TRANSIENT:
        return
    now = clock.now()
    current = _get(key)
    window = float(settings.LLM_BREAKER_WINDOW)
    failures = [t for t in current.get("failures", []) if t > now - window] + [now]
    opened_at = current.get("opened_at")
    if opened_at is not None and now >= opened_at + float(settings.LLM_BREAKER_COOLDOWN):
        opened_at = now  # the half-open probe failed: open again for a full cooldown
        _drop_probe(key)
        logger.warning("circuit breaker of %s opened again (the probe failed)", key)
    elif opened_at is None and len(failures) >= int(settings.LLM_BREAKER_FAILURES):
        opened_at = now
        logger.warning(
            "circuit breaker of %s opened after %d transient failures", key, len(failures)
        )
        _track(key, True)
    keep = int(settings.LLM_BREAKER_FAILURES)
    _set(key, {"failures": failures[-keep:], "opened_at": opened_at})


def _drop_probe(key: str) -> None:
    try:
        cache.delete(PROBE_KEY.format(key=key))
    except Exception:  # the probe key also expires by itself after the cooldown
        logger.warning("circuit breaker probe of %s not released", key, exc_info=False)


TRIPPED_KEY = "llm_breaker_tripped"


def _track(key: str, tripped: bool) -> None:
    """The configs whose breaker is not closed, so /healthz reads one entry, not every config."""
    try:
        keys = set(cache.get(TRIPPED_KEY) or ())
        if (key in keys) != tripped:
            keys = keys | {key} if tripped else keys - {key}
            cache.set(TRIPPED_KEY, sorted(keys), timeout=None)
    except Exception:
        logger.warning("circuit breaker list not updated", exc_info=False)


def health_counts() -> dict:
    """{"open": n, "half_open": m} over every config's breaker (for /healthz: counts only)."""
    counts = {OPEN: 0, HALF_OPEN: 0}
    try:
        keys = list(cache.get(TRIPPED_KEY) or ())
    except Exception:
        return {"status": "unknown"}
    for key in keys:
        current = state(key)["state"]
        if current == CLOSED:
            _track(key, False)
        else:
            counts[current] += 1
    return counts
