"""Fallbacks across a tenant's configs (SPEC §14): the active config first, then the chain.

The chain is the tenant's configs with a `fallback_order` (ascending; null keeps a config
out). Whether a tenant has one is part of its cached policy (policy.tenant_policy: one
lookup per LLM_LIMITS_CACHE_SECONDS per process, cleared when a config is saved or
deleted); the chain itself is read only when a call falls back. A call moves on only
after a transient failure (connection, timeout,
server_error, overloaded, the provider's rate_limit; an open circuit breaker counts as
overloaded): never after invalid_request, authentication, permission, not_found, a
content refusal or Switchyard's own limits, and never once a stream's first byte went to
the client (the engine only asks before that). Each attempt writes its own usage row;
when the tenant has a chain every row carries the logical `request_id` (shared) and,
from the second on, `fallback_from` (the config whose failure led to it); the provider's
own id is then `upstream_request_id`.
"""

import uuid

from tenants.context import current_request_id

from .breaker import TRANSIENT
from .policy import cached_tenant_policy, tenant_policy


def chain_configs(tenant_id: str) -> list:
    """The tenant's fallback configs in order (with their tenant): read when falling back."""
    from ..models import ProviderConfig

    configs = list(
        ProviderConfig.objects.filter(tenant_id=tenant_id, fallback_order__isnull=False)
        .select_related("tenant")
        .order_by("fallback_order", "created_at")
    )
    for config in configs:
        config.tenant_is_active = config.tenant.is_active
    return configs


class Chain:
    """The attempts of one logical call: `metadata()` for each, `next(error)` to move on."""

    def __init__(self, tenant_id: str, first, *, forced: bool, metadata: dict | None):
        self.tenant_id = tenant_id
        self.base = metadata
        # Whether the tenant has a chain comes with its limits (one cached lookup); the
        # chain itself is read only when a call falls back.
        self.active = not forced and first.tenant_exists and tenant_policy(tenant_id).has_chain
        self.first_id = first.config.pk if first.config is not None else None
        self.remaining = None
        # The serving request's X-Request-ID names the logical call when there is one.
        self.request_id = (current_request_id() or uuid.uuid4().hex) if self.active else None
        self.current = self.first_id
        self.fallback_from = None

    def metadata(self) -> dict | None:
        if self.request_id is None:
            return self.base
        meta = dict(self.base or {})
        meta["request_id"] = self.request_id
        if self.fallback_from is not None:
            meta["fallback_from"] = str(self.fallback_from)
        return meta

    def may_fall_back(self, error) -> bool:
        """Whether `next(error)` could return anything (no query: the async path asks
        this on the loop and takes a thread only when it may)."""
        return error is not None and error.type in TRANSIENT and self.active

    @staticmethod
    def needs_query(tenant_id: str, first, *, forced: bool) -> bool:
        """Whether building a Chain would query (its policy is not cached)."""
        return not forced and first.tenant_exists and cached_tenant_policy(tenant_id) is None

    def next(self, error):
        """The next usable config's ResolvedConfig after `error`, or None: stop here."""
        if not self.may_fall_back(error):
            return None
        from ..engine.resolution import resolve_config

        if self.remaining is None:
            self.remaining = [c for c in chain_configs(self.tenant_id) if c.pk != self.first_id]
        while self.remaining:
            config = self.remaining.pop(0)
            resolved = resolve_config(config)
            if not resolved.usable:
                continue
            self.fallback_from, self.current = self.current, config.pk
            return resolved
        return None
