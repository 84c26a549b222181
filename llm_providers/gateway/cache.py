"""In-process caches for the /v1 hot path: API key → key row, tenant → resolved config.

Measured (bench/README.md): looking the key up and loading the config cost more than the
rest of a call. Both change rarely, so each process keeps them for a few seconds
(`LLM_GATEWAY_CACHE_SECONDS`, default 5). Any save or delete of a tenant, an API key or
a provider config clears both caches in the process that made the change (signals);
other processes see the change within the TTL. Failed lookups are never cached, so a new
key works at once. Expiry is re-checked on every hit.

A tenant's entry is its whole resolution (engine/resolution.py), the environment
fallback included, so a warm call looks nothing up. A settings change (tests) clears it.

Keys are cached under their SHA-256, never in plaintext.
"""

import hashlib
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.test.signals import setting_changed
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from tenants.authentication import resolve_api_key
from tenants.models import TenantAPIKey

from ..engine import resolution
from ..models import ProviderConfig

MAX_ENTRIES = 10_000
_MISSING = object()


class TTLCache:
    """A small dict with per-entry expiry; single dict operations are atomic under the GIL."""

    def __init__(self):
        self._data: dict = {}

    def get(self, key):
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return _MISSING
        return hit[1]

    def set(self, key, value) -> None:
        if len(self._data) >= MAX_ENTRIES:
            self._data.clear()  # crude, but bounded; a full cache is a cold cache
        self._data[key] = (time.monotonic() + ttl(), value)

    def clear(self) -> None:
        self._data.clear()


_keys = TTLCache()
_configs = TTLCache()


def ttl() -> float:
    return float(settings.LLM_GATEWAY_CACHE_SECONDS)


def authenticate_key(key: str) -> TenantAPIKey:
    """`resolve_api_key` with a short in-process cache; AuthenticationFailed as it raises."""
    if ttl() <= 0:
        return resolve_api_key(key)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    api_key = _keys.get(digest)
    if api_key is _MISSING:
        api_key = resolve_api_key(key)
        _keys.set(digest, api_key)
    elif api_key.expiry_date is not None and api_key.expiry_date <= timezone.now():
        raise AuthenticationFailed("API key has expired.")
    return api_key


def cached_key(key: str) -> TenantAPIKey | None:
    """The cached key row for `key`, None when it must be looked up (no database access).

    AuthenticationFailed for a cached key that has expired since."""
    if ttl() <= 0:
        return None
    api_key = _keys.get(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())
    if api_key is _MISSING:
        return None
    if api_key.expiry_date is not None and api_key.expiry_date <= timezone.now():
        raise AuthenticationFailed("API key has expired.")
    return api_key


def cached_config(tenant_id: str | int) -> resolution.ResolvedConfig | None:
    """The cached resolution, None when it must be looked up (no database access)."""
    if ttl() <= 0:
        return None
    resolved = _configs.get(tenant_id)
    return None if resolved is _MISSING else resolved


def resolved_config(tenant_id: str | int) -> resolution.ResolvedConfig:
    """Where the tenant's calls go (as LLMService resolves it), cached for a few seconds."""
    resolved = _configs.get(tenant_id) if ttl() > 0 else _MISSING
    if resolved is _MISSING:
        resolved = resolution.resolve(tenant_id)
        if ttl() > 0 and resolved.tenant_exists:
            _configs.set(tenant_id, resolved)
    return resolved


def active_config(tenant_id: str | int) -> ProviderConfig | None:
    """The tenant's active config (None on the environment fallback), from that cache."""
    return resolved_config(tenant_id).config


def clear() -> None:
    _keys.clear()
    _configs.clear()


def _on_change(sender, **kwargs) -> None:
    clear()


setting_changed.connect(_on_change, dispatch_uid="gateway-cache-settings")
# The tenant model as a lazy "app_label.Model" sender: SWITCHYARD_TENANT_MODEL may name a
# host project's model.
for _model in (settings.SWITCHYARD_TENANT_MODEL, TenantAPIKey, ProviderConfig):
    post_save.connect(_on_change, sender=_model, dispatch_uid=f"gateway-cache-save-{_model}")
    post_delete.connect(_on_change, sender=_model, dispatch_uid=f"gateway-cache-del-{_model}")
