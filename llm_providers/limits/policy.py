"""What the limits are, the windows they count in, and what a call reserves.

Windows are fixed and UTC: the current minute (requests, tokens), day and month (USD).
A fixed window frees up all at once at its end, so `retry_after` is exact: the seconds
until the window ends. The price of fixed windows: a client can use a minute's allowance
at the end of one minute and again at the start of the next.

Money is counted in integer units of 1e-8 USD (the usage rows' precision), so the
database and Redis backends add exactly.
"""

import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from django.conf import settings
from django.db.models.signals import post_delete, post_save

COST_UNIT = Decimal("0.00000001")
# Per-message overhead of chat formats (role markers), and bytes per token of the estimate.
MESSAGE_OVERHEAD_TOKENS = 4
BYTES_PER_TOKEN = 3


def to_units(usd: Decimal | None) -> int:
    """USD → whole 1e-8 units, rounded up (a reservation is never smaller than the cost)."""
    if usd is None:
        return 0
    return int((Decimal(usd) / COST_UNIT).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int) -> Decimal:
    return (Decimal(int(units)) * COST_UNIT).quantize(COST_UNIT)


@dataclass(frozen=True)
class Limits:
    """One tenant's limits (None: no such limit); money in 1e-8 USD units."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    usd_per_day: int | None = None
    usd_per_month: int | None = None
    max_concurrent: int | None = None

    @classmethod
    def from_row(cls, row) -> "Limits":
        return cls(
            requests_per_minute=row.requests_per_minute,
            tokens_per_minute=row.tokens_per_minute,
            usd_per_day=None if row.usd_per_day is None else to_units(row.usd_per_day),
            usd_per_month=None if row.usd_per_month is None else to_units(row.usd_per_month),
            max_concurrent=row.max_concurrent,
        )

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.usd_per_day,
                self.usd_per_month,
                self.max_concurrent,
            )
        )

    @property
    def money(self) -> bool:
        return self.usd_per_day is not None or self.usd_per_month is not None


@dataclass(frozen=True)
class Windows:
    """The current UTC minute, day and month (as integers) and when each ends (Unix time)."""

    now: float
    minute: int
    day: int
    month: int
    minute_ends: float
    day_ends: float
    month_ends: float


def windows(now: float) -> Windows:
    minute = int(now // 60)
    day = int(now // 86400)
    moment = datetime.fromtimestamp(now, UTC)
    month = moment.year * 12 + moment.month - 1
    next_year, next_month = divmod(month + 1, 12)
    month_ends = datetime(next_year, next_month + 1, 1, tzinfo=UTC).timestamp()
    return Windows(
        now=now,
        minute=minute,
        day=day,
        month=month,
        minute_ends=(minute + 1) * 60.0,
        day_ends=(day + 1) * 86400.0,
        month_ends=month_ends,
    )


def window_start(kind: str, now: float) -> datetime:
    """The start of the current `minute`, `day` or `month` as an aware UTC datetime."""
    moment = datetime.fromtimestamp(now, UTC)
    if kind == "minute":
        return moment.replace(second=0, microsecond=0)
    if kind == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def estimate_prompt_tokens(messages) -> int:
    """A deliberately generous estimate of a prompt's tokens: no tokenizer, no model.

    UTF-8 bytes / 3 plus a per-message overhead. English runs at ~4 bytes per token, so
    this over-reserves; text that tokenises worse (CJK, emoji, random strings) can exceed
    it, and the settlement then counts the actual tokens (README: guarantees).
    """
    size = 0
    for message in messages:
        content = message.get("content") if hasattr(message, "get") else None
        if isinstance(content, str):
            size += len(content.encode("utf-8", "surrogatepass"))
        elif content is not None:
            size += len(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return math.ceil(size / BYTES_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)


def reserved_completion_tokens(max_tokens: int | None, metadata: dict | None) -> int:
    """The answer length a call reserves: its max_tokens, the config's, else the cap."""
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        return max_tokens
    configured = (metadata or {}).get("max_tokens")
    if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0:
        return configured
    return int(settings.LLM_LIMITS_DEFAULT_MAX_TOKENS)


# --- The limits row, cached per process ----------------------------------------------------

_MISSING = object()
_cache: dict[str, tuple[float, "TenantPolicy"]] = {}
_cache_lock = threading.Lock()
MAX_CACHED = 10_000


@dataclass(frozen=True)
class TenantPolicy:
    limits: Limits | None  # None: no limit set
    has_chain: bool  # some config of the tenant has a fallback_order


NO_POLICY = TenantPolicy(None, False)


def tenant_policy(tenant_id: str) -> TenantPolicy:
    """The tenant's limits and whether it has a fallback chain: one query, cached per process.

    Read at most every LLM_LIMITS_CACHE_SECONDS. Tenants without limits are the common
    case: their answer is cached too, so a call of such a tenant costs a dict lookup, no
    query. A save or delete of its limits row or of one of its configs clears the entry
    in the process that made it; other processes follow within the TTL.
    """
    ttl = float(settings.LLM_LIMITS_CACHE_SECONDS)
    hit = _cache.get(tenant_id, _MISSING) if ttl > 0 else _MISSING
    monotonic = time.monotonic()
    if hit is not _MISSING and hit[0] > monotonic:
        return hit[1]
    policy = _load(tenant_id)
    if ttl > 0:
        with _cache_lock:
            if len(_cache) >= MAX_CACHED:
                _cache.clear()
            _cache[tenant_id] = (monotonic + ttl, policy)
    return policy


def cached_tenant_policy(tenant_id: str) -> "TenantPolicy | None":
    """`tenant_policy` when it is cached and fresh, else None: never a query (the async
    path asks this on the loop and goes to a thread only on a miss)."""
    hit = _cache.get(tenant_id, _MISSING)
    if hit is not _MISSING and hit[0] > time.monotonic():
        return hit[1]
    return None


def _load(tenant_id: str) -> TenantPolicy:
    from django.db.models import Exists, OuterRef

    from tenants import get_tenant_model

    from ..models import ProviderConfig, TenantLLMLimits

    Tenant = get_tenant_model()  # noqa: N806

    chain = ProviderConfig.objects.filter(tenant=OuterRef("pk"), fallback_order__isnull=False)
    row = (
        Tenant.objects.filter(pk=tenant_id)
        .annotate(has_chain=Exists(chain))
        .select_related("llm_limits")
        .only("pk", "llm_limits")
        .first()
    )
    if row is None:
        return NO_POLICY
    try:
        limits = Limits.from_row(row.llm_limits)
    except TenantLLMLimits.DoesNotExist:
        limits = None
    if limits is not None and not limits.any:
        limits = None
    return TenantPolicy(limits, bool(row.has_chain))


def cached_policy(tenant_id) -> TenantPolicy | None:
    """The tenant's policy if this process holds a fresh copy, else None (no query)."""
    hit = _cache.get(tenant_id, _MISSING)
    if hit is _MISSING or hit[0] <= time.monotonic():
        return None
    return hit[1]


def limits_for(tenant_id: str) -> Limits | None:
    """The tenant's limits (None: no limit set); see tenant_policy."""
    return tenant_policy(tenant_id).limits


def forget(tenant_id: str | None = None) -> None:
    with _cache_lock:
        if tenant_id is None:
            _cache.clear()
        else:
            _cache.pop(tenant_id, None)


def _on_change(sender, instance, **kwargs) -> None:
    forget(instance.tenant_id)


def connect_signals() -> None:
    from ..models import ProviderConfig, TenantLLMLimits

    for model in (TenantLLMLimits, ProviderConfig):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"llm-policy-save-{model}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"llm-policy-del-{model}")
