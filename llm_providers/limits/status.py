"""A tenant's limits and what is left of them, for the status endpoint and the admin."""

import math

from ..models import TenantLLMLimits
from . import clock
from .backends import get_backend
from .policy import Limits, from_units, windows


def limits_status(tenant_id: str) -> dict | None:
    """None without limits; else per limit: `limit`, `used`, `remaining`, `resets_in` (s)."""
    row = TenantLLMLimits.objects.filter(tenant_id=tenant_id).first()
    if row is None:
        return None
    limits = Limits.from_row(row)
    if not limits.any:
        return None
    now = clock.now()
    w = windows(now)
    counters = get_backend().counters(tenant_id, w)

    def entry(limit, used, ends, money=False):
        if limit is None:
            return None
        remaining = max(0, limit - used)
        return {
            "limit": str(from_units(limit)) if money else limit,
            "used": str(from_units(used)) if money else used,
            "remaining": str(from_units(remaining)) if money else remaining,
            "resets_in": None if ends is None else max(0, math.ceil(ends - now)),
        }

    return {
        "requests_per_minute": entry(
            limits.requests_per_minute, counters.minute_requests, w.minute_ends
        ),
        "tokens_per_minute": entry(limits.tokens_per_minute, counters.minute_tokens, w.minute_ends),
        "usd_per_day": entry(limits.usd_per_day, counters.day_cost, w.day_ends, money=True),
        "usd_per_month": entry(limits.usd_per_month, counters.month_cost, w.month_ends, money=True),
        "max_concurrent": entry(limits.max_concurrent, counters.inflight, None),
    }
