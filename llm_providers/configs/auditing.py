"""What a provider config's audit events say about it (SPEC §15): fields, never secrets.

The key itself is never looked at: a replacement is recorded as "[changed]" with the old
and new last four characters (which the API shows anyway). Metadata is flattened into
`metadata.<path>` entries so that one changed timeout does not repeat the whole object, and
values under credential-like names (extra headers' keys, tokens…) are "[changed]" too.
"""

import re
from collections.abc import Mapping

from tenants import audit

from ..models import ProviderConfig

TARGET_TYPE = "provider_config"
# The same names the REST API masks in metadata (api.serializers.SECRET_KEY_NAME_RE);
# repeated here because configs must not import the API layer.
SECRET_NAME_RE = re.compile(r"key|secret|token|passw|auth|credential|cookie|signature", re.I)
API_KEY = "api_key"


def _flatten(value, prefix: str, out: dict, secrets: set) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            path = f"{prefix}.{key}"
            if SECRET_NAME_RE.search(str(key)) and not isinstance(item, Mapping):
                secrets.add(path)
            _flatten(item, path, out, secrets)
    else:
        out[prefix] = value


def config_values(config: ProviderConfig) -> tuple[dict, set]:
    """The audited fields of `config` and the names among them that are secrets."""
    values = {
        "provider": config.provider,
        "default_model": config.default_model,
        "base_url": config.base_url,
        "is_active": config.is_active,
        "api_key_last4": config.api_key_last4,
    }
    secrets = {API_KEY}
    _flatten(config.metadata or {}, "metadata", values, secrets)
    return values, secrets


def config_diff(before: tuple[dict, set], after: tuple[dict, set], *, key_replaced: bool):
    values_before, secrets_before = before
    values_after, secrets_after = after
    changes = audit.diff(values_before, values_after, secrets=secrets_before | secrets_after)
    if key_replaced:
        changes[API_KEY] = audit.CHANGED
    return changes


def record_config_event(action: str, config: ProviderConfig, changes: dict):
    return audit.record(
        f"{TARGET_TYPE}.{action}",
        tenant=config.tenant_id,
        target_type=TARGET_TYPE,
        target_id=config.pk,
        changes=changes,
    )
