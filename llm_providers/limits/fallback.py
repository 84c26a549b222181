"""Fallbacks across a tenant's configs (SPEC §14): the active config first, then the chain.

The chain is the tenant's configs with a `fallback_order` (ascending; null keeps a config
out), kept per process for LLM_LIMITS_CACHE_SECONDS and cleared when a config is saved
or deleted. A call moves on only after a transient failure (connection, timeout,
server_error, overloaded, the provider's rate_limit; an open circuit breaker counts as
overloaded): never after invalid_request, authentication, permission, not_found, a
content refusal or Switchyard's own limits, and never once a stream's first byte went to
the client (the engine only asks before that). Each attempt writes its own usage row;
when the tenant has a chain every row carries the logical `request_id` (shared) and,
from the second on, `fallback_from` (the config whose failure led to it); the provider's
own id is then `provider_request_id`.
"""

import threading
import time
import uuid

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .breaker import TRANSIENT

_cache: dict[str, tuple[float, list]] = {}
_lock = threading.Lock()


def chain_configs(tenant_id: str) -> list:
    """The tenant's fallback configs in order (with their tenant), cached per process."""
    ttl = float(settings.LLM_LIMITS_CACHE_SECONDS)
    hit = _cache.get(tenant_id) if ttl > 0 else None
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    from ..models import ProviderConfig

    configs = list(
        ProviderConfig.objects.filter(tenant_id=tenant_id, fallback_order__isnull=False)
        .select_related("tenant")
        .order_by("fallback_order", "created_at")
    )
    for config in configs:
        config.tenant_is_active = config.tenant.is_active
    if ttl > 0:
        with _lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[tenant_id] = (now + ttl, configs)
    return configs


def forget(*args, **kwargs) -> None:
    with _lock:
        _cache.clear()


def connect_signals() -> None:
    from ..models import ProviderConfig

    post_save.connect(forget, sender=ProviderConfig, dispatch_uid="llm-fallback-save")
    post_delete.connect(forget, sender=ProviderConfig, dispatch_uid="llm-fallback-delete")


class Chain:
    """The attempts of one logical call: `metadata()` for each, `next(error)` to move on."""

    def __init__(self, tenant_id: str, first, *, forced: bool, metadata: dict | None):
        self.base = metadata
        self.forced = forced
        self.configs = [] if forced else chain_configs(tenant_id)
        first_id = first.config.pk if first.config is not None else None
        self.remaining = [c for c in self.configs if c.pk != first_id]
        self.request_id = uuid.uuid4().hex if self.configs else None
        self.current = first_id
        self.fallback_from = None

    def metadata(self) -> dict | None:
        if self.request_id is None:
            return self.base
        meta = dict(self.base or {})
        meta["request_id"] = self.request_id
        if self.fallback_from is not None:
            meta["fallback_from"] = str(self.fallback_from)
        return meta

    def next(self, error):
        """The next usable config's ResolvedConfig after `error`, or None: stop here."""
        if error is None or error.type not in TRANSIENT or self.forced:
            return None
        from ..engine.resolution import _from_config

        while self.remaining:
            config = self.remaining.pop(0)
            resolved = _from_config(config)
            if not resolved.usable:
                continue
            self.fallback_from, self.current = self.current, config.pk
            return resolved
        return None
