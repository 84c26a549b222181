"""Where a call goes, and whether the config is usable (SPEC §4).

Configuration source, in order: the tenant's active ProviderConfig (or the one forced with
`config=`); else the environment fallback (LLM_DEFAULT_PROVIDER, LLM_DEFAULT_MODEL,
LLM_DEFAULT_BASE_URL and the provider's key variable); else unavailable.

`active_config` is the one SELECT of the hot path, without the ORM's per-call query
compilation (bench/README.md); it is built from the models' own metadata, runs through
Django's connection and cursor, and tests check it agrees with the ORM. Tenant scoping:
it is the for_tenant(...).active() query, written out.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, router

from tenants import get_tenant_model

from ..errors import ErrorType, ProviderError
from ..models import KeyStatus, ProviderConfig
from ..providers.base import ProviderAdapter
from ..providers.registry import UnknownProvider, get_adapter
from .options import CallOptions

logger = logging.getLogger(__name__)

SOURCE_CONFIG = "config"
SOURCE_ENVIRONMENT = "environment"


@dataclass
class ResolvedConfig:
    """Where a call goes: provider, model, base URL, key, and whether it is usable."""

    source: str | None
    provider: str = ""
    model: str = ""
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    adapter: ProviderAdapter | None = None
    config: ProviderConfig | None = None
    metadata: dict = field(default_factory=dict)
    check_address: bool = False  # tenant-supplied base URL: check the peer when connecting
    tenant_exists: bool = True
    key_status: str = KeyStatus.MISSING  # what status pages report about the key
    options: CallOptions = field(default_factory=CallOptions)  # the config's own limits
    tenant_id: str | None = None
    error: ProviderError | None = None

    @property
    def usable(self) -> bool:
        return self.error is None

    def require_adapter(self) -> ProviderAdapter:
        """The adapter of a resolved provider (every usable config has one)."""
        if self.adapter is None:
            raise RuntimeError(f"No adapter for provider {self.provider!r}: {self.error}")
        return self.adapter

    def describe(self) -> dict:
        """Availability for status pages: source, provider, model, config id, the reason."""
        return {
            "available": self.usable,
            "source": self.source,
            "provider": self.provider or None,
            "model": self.model or None,
            "config_id": str(self.config.pk) if self.config is not None else None,
            "error": self.error.as_dict() if self.error else None,
        }


# -- the provider rules, from the adapters' metadata ------------------------------------
# Adapters say which providers need a key and which settings hold the environment's key
# and base URL; only this module reads those settings.
def adapter_for(provider: str) -> ProviderAdapter | None:
    try:
        return get_adapter(provider)
    except UnknownProvider:
        return None


def requires_api_key(provider: str) -> bool:
    """Whether a config of `provider` is unusable without a key (False when unknown)."""
    adapter = adapter_for(provider)
    return adapter is not None and adapter.requires_api_key


def requires_base_url(provider: str) -> bool:
    """Whether a config of `provider` must name its base URL (no default, no setting)."""
    adapter = adapter_for(provider)
    return adapter is not None and not base_url_for(adapter, None)


def base_url_for(adapter: ProviderAdapter, configured: str | None) -> str:
    """The configured base URL, else the provider's environment setting, else its default."""
    setting = adapter.base_url_setting
    # A preset's own setting (GEMINI_BASE_URL…) may be absent: unset means "use the default".
    env_value = getattr(settings, setting, "") if setting else ""  # checks.py: E006
    return (configured or env_value or adapter.default_base_url or "").rstrip("/")


def _operator_base_url(provider: str) -> bool:
    """Whether `provider`'s base URL is set by the operator (an environment setting)."""
    adapter = adapter_for(provider)
    setting = adapter.base_url_setting if adapter is not None else None
    return bool(setting and getattr(settings, setting, ""))


def environment_api_key(adapter: ProviderAdapter) -> str | None:
    """The environment fallback's key for `adapter`'s provider (its key setting)."""
    key = getattr(settings, adapter.key_setting, "") if adapter.key_setting else ""
    return (key or "").strip() or None


# -- resolution ---------------------------------------------------------------------------
def resolve(tenant_id: str, config: ProviderConfig | None = None) -> ResolvedConfig:
    """Where a call for `tenant_id` goes (`config` forced, else looked up), and whether it can."""
    resolved = _resolve(tenant_id, config)
    resolved.tenant_id = tenant_id
    return resolved


def _resolve(tenant_id: str, config: ProviderConfig | None) -> ResolvedConfig:
    if config is None:
        config = active_config(tenant_id)
    if config is not None:
        return resolve_config(config)
    tenant_active = (
        get_tenant_model().objects.filter(pk=tenant_id).values_list("is_active", flat=True).first()
    )
    if tenant_active is None:
        return ResolvedConfig(
            source=None,
            tenant_exists=False,
            error=config_error(f"Unknown tenant {tenant_id!r}."),
        )
    if not tenant_active:
        return ResolvedConfig(source=None, error=config_error("The tenant is not active."))
    return resolve_environment()


def resolve_config(config: ProviderConfig) -> ResolvedConfig:
    """A stored config as a call would use it (its tenant must be active)."""
    key_status = config.key_status
    metadata = config.metadata if isinstance(config.metadata, dict) else {}
    resolved = ResolvedConfig(
        source=SOURCE_CONFIG,
        provider=config.provider,
        model=config.default_model,
        config=config,
        metadata=metadata,
        # A tenant's own URL, or a built-in default that is not the operator's setting (a
        # preset such as Ollama defaults to loopback): the peer is checked when connecting.
        check_address=bool(config.base_url) or not _operator_base_url(config.provider),
        key_status=key_status,
        options=CallOptions.from_metadata(metadata),
        tenant_id=config.tenant_id,
    )
    tenant_active = getattr(config, "tenant_is_active", None)
    if tenant_active is None:  # a config not loaded by active_config
        tenant_active = config.tenant.is_active
    if not tenant_active:
        resolved.error = config_error("The tenant is not active.")
        return resolved
    resolved.adapter = adapter = adapter_for(config.provider)
    if adapter is None:
        resolved.error = config_error(f"Unknown provider {config.provider!r}.")
        return resolved
    if key_status == KeyStatus.UNDECRYPTABLE:
        logger.warning(
            "provider config %s (tenant %s): stored key cannot be decrypted with "
            "FIELD_ENCRYPTION_KEY",
            config.pk,
            config.tenant_id,
        )
        resolved.error = config_error(
            "The stored API key cannot be decrypted with FIELD_ENCRYPTION_KEY; "
            "restore the encryption key or enter the API key again."
        )
        return resolved
    if key_status == KeyStatus.OK:
        resolved.api_key = config.api_key_encrypted
    elif adapter.requires_api_key:
        resolved.error = config_error(f"The {config.provider} config has no API key.")
        return resolved
    resolved.base_url = base_url_for(adapter, config.base_url)
    if not resolved.base_url:
        resolved.error = config_error(f"The {config.provider} config has no base URL.")
    elif not resolved.model:
        resolved.error = config_error("The config has no default model.")
    return resolved


def environment_provider() -> str:
    """LLM_DEFAULT_PROVIDER, normalised ('' when the environment fallback is off)."""
    return (settings.LLM_DEFAULT_PROVIDER or "").strip().lower()


def resolve_environment() -> ResolvedConfig:
    """The environment fallback (SPEC §4) as a call of an active tenant would use it."""
    provider = environment_provider()
    if not provider:
        return ResolvedConfig(
            source=None,
            error=config_error(
                "No active provider config for this tenant and no LLM_DEFAULT_PROVIDER."
            ),
        )
    resolved = ResolvedConfig(
        source=SOURCE_ENVIRONMENT,
        provider=provider,
        model=(settings.LLM_DEFAULT_MODEL or "").strip(),
    )
    resolved.adapter = adapter = adapter_for(provider)
    if adapter is None:
        resolved.error = config_error("LLM_DEFAULT_PROVIDER names an unknown provider.")
        return resolved
    resolved.api_key = environment_api_key(adapter)
    resolved.key_status = KeyStatus.OK if resolved.api_key else KeyStatus.MISSING
    if adapter.requires_api_key and not resolved.api_key:
        resolved.error = config_error(
            f"LLM_DEFAULT_PROVIDER is {provider} but {adapter.key_setting} is not set."
        )
        return resolved
    # Operator-supplied URLs are trusted: no connect-time address check.
    resolved.base_url = base_url_for(adapter, settings.LLM_DEFAULT_BASE_URL or None)
    if not resolved.base_url:
        resolved.error = config_error(
            f"LLM_DEFAULT_BASE_URL is required for LLM_DEFAULT_PROVIDER={provider}."
        )
    elif not resolved.model:
        resolved.error = config_error("LLM_DEFAULT_MODEL is not set.")
    return resolved


def config_error(message: str) -> ProviderError:
    return ProviderError(ErrorType.CONFIGURATION, message)


def active_config(tenant_id: str) -> ProviderConfig | None:
    """The tenant's active config, with `tenant_is_active` set from the joined tenant row."""
    alias = router.db_for_read(ProviderConfig)
    connection = connections[alias]
    prepared = _select.get((alias, connection.vendor))
    if prepared is None:
        prepared = _select[(alias, connection.vendor)] = _prepare_select(connection)
    sql, converters = prepared
    with connection.cursor() as cursor:
        # At most one active config per tenant (a DB constraint): no ORDER BY / LIMIT.
        cursor.execute(sql, [tenant_id, True])
        row = cursor.fetchone()
    if row is None:
        return None
    # The conversions the ORM's compiler applies (backend's, then the field's own
    # from_db_value: UUIDs, datetimes, JSON, the key's decryption).
    values = list(row)
    for position, field_converters, expression in converters:
        value = values[position]
        for convert in field_converters:
            value = convert(value, expression, connection)
        values[position] = value
    config = ProviderConfig.from_db(alias, _CONFIG_ATTNAMES, values[:-1])
    config.tenant_is_active = bool(values[-1])  # type: ignore[attr-defined]  # not a field
    return config


_CONFIG_FIELDS = ProviderConfig._meta.concrete_fields
_CONFIG_ATTNAMES = [f.attname for f in _CONFIG_FIELDS]
_select: dict[tuple[str, str], tuple[str, list]] = {}


def _prepare_select(connection) -> tuple[str, list]:
    q = connection.ops.quote_name
    # SWITCHYARD_TENANT_MODEL: read when the first query is prepared (apps are ready).
    Tenant = get_tenant_model()  # noqa: N806
    table = ProviderConfig._meta.db_table
    columns = ", ".join(f"c.{q(f.column)}" for f in _CONFIG_FIELDS)
    tenant_pk = q(Tenant._meta.pk.column)
    tenant_fk = q(ProviderConfig._meta.get_field("tenant").column)
    # Only quoted identifiers from model metadata are interpolated; values are parameters.
    sql = " ".join(
        [
            f"SELECT {columns}, t.{q('is_active')}",
            f"FROM {q(table)} c",
            f"INNER JOIN {q(Tenant._meta.db_table)} t ON t.{tenant_pk} = c.{tenant_fk}",
            f"WHERE c.{tenant_fk} = %s AND c.{q('is_active')} = %s",
        ]
    )
    expressions = [f.get_col(table) for f in _CONFIG_FIELDS]
    expressions.append(Tenant._meta.get_field("is_active").get_col(Tenant._meta.db_table))
    converters = []
    for position, expression in enumerate(expressions):
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        if found:
            converters.append((position, found, expression))
    return sql, converters
