"""Provider configuration operations (SPEC §4)."""

import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import transaction

from tenants import audit, get_tenant_model
from tenants.services import tenant_create

from ..engine import resolution
from ..models import Provider, ProviderConfig
from .auditing import config_diff, config_values, record_config_event
from .encryption import UndecryptableKeyError, UndecryptableSecret
from .metadata_rules import metadata_problems
from .urlsafety import UnsafeBaseURL, validate_base_url

logger = logging.getLogger(__name__)

UNSET = object()


class ProviderConfigService:
    """Create, change, activate and read tenants' provider configs.

    Every change writes its audit event (tenants.audit) in the change's own transaction.
    """

    def save_provider_config(
        self,
        *,
        tenant_id: str | int,
        provider: str,
        api_key: str = "",
        default_model: str,
        base_url: str = "",
        activate: bool = True,
        metadata: dict | None = None,
    ) -> uuid.UUID:
        """Create a config (activating it unless `activate=False`) and return its id.

        With the default tenant model the tenant is created when it does not exist yet, so
        that an embedding application can hand Switchyard its own tenant ids; a host's own
        tenant model (SWITCHYARD_TENANT_MODEL) is the host's to create: an unknown id there
        is a ValueError.
        """
        config = ProviderConfig(
            provider=provider,
            default_model=(default_model or "").strip(),
            base_url=base_url or "",
            metadata=metadata if metadata is not None else {},
        )
        config.set_api_key((api_key or "").strip())
        self.clean_provider_config(config)
        with transaction.atomic():
            tenant = self._tenant_for_update(tenant_id, create=True)
            config.tenant = tenant
            previous = None
            if activate:
                previous = ProviderConfig.objects.for_tenant(tenant).active().first()
                ProviderConfig.objects.for_tenant(tenant).active().update(is_active=False)
                config.is_active = True
            config.save(force_insert=True)
            values, secrets = config_values(config)
            changes = audit.created(values, secrets=secrets)
            if config.api_key_encrypted:
                changes["api_key"] = audit.CHANGED
            if previous is not None:
                changes["deactivated"] = str(previous.pk)
            record_config_event("create", config, changes)
        logger.info(
            "provider config %s created for tenant %s (%s, active=%s)",
            config.pk,
            tenant.pk,
            provider,
            config.is_active,
        )
        return config.pk

    def update_provider_config(
        self,
        *,
        config: ProviderConfig,
        api_key=UNSET,
        default_model=UNSET,
        base_url=UNSET,
        metadata=UNSET,
        fallback_order=UNSET,
    ) -> ProviderConfig:
        """Change a config; an `api_key` given as UNSET (or None) keeps the current key.

        A new key is audited as `provider_config.key_replace` (its value never is), any
        other change as `provider_config.update`.

        `fallback_order` (None: out of the chain) places it in the tenant's fallback chain.
        """
        fields = []
        if fallback_order is not UNSET:
            config.fallback_order = fallback_order
            fields.append("fallback_order")
        if api_key is not UNSET and api_key is not None:
            config.set_api_key(api_key.strip())
            fields += ["api_key_encrypted", "api_key_last4"]
        if default_model is not UNSET:
            config.default_model = (default_model or "").strip()
            fields.append("default_model")
        if base_url is not UNSET:
            config.base_url = base_url or ""
            fields.append("base_url")
        if metadata is not UNSET:
            config.metadata = metadata or {}
            fields.append("metadata")
        self.clean_provider_config(config)
        if not fields:
            return config
        with transaction.atomic():
            # "Before" is what is stored: the admin's form has already changed `config`.
            stored = ProviderConfig.objects.select_for_update().get(pk=config.pk)
            # Compared here, never written into the event.
            key_replaced = "api_key_encrypted" in fields and (
                config.api_key_encrypted != stored.api_key_encrypted
            )
            config.save(update_fields=[*fields, "updated_at"])
            changes = config_diff(
                config_values(stored), config_values(config), key_replaced=key_replaced
            )
            if changes:
                record_config_event("key_replace" if key_replaced else "update", config, changes)
        return config

    def activate(self, *, tenant_id: str | int, config_id) -> ProviderConfig:
        """Make `config_id` the tenant's active config, deactivating the other atomically."""
        with transaction.atomic():
            tenant = self._tenant_for_update(tenant_id)
            config = ProviderConfig.objects.for_tenant(tenant).get(pk=config_id)
            others = ProviderConfig.objects.for_tenant(tenant).active().exclude(pk=config.pk)
            previous = others.first()
            others.update(is_active=False)
            if not config.is_active:
                config.is_active = True
                config.save(update_fields=["is_active", "updated_at"])
                changes = {"is_active": [False, True]}
                if previous is not None:
                    changes["deactivated"] = str(previous.pk)
                record_config_event("activate", config, changes)
        return config

    def deactivate(self, *, config: ProviderConfig) -> ProviderConfig:
        """Leave the tenant without an active config (calls use the environment fallback)."""
        with transaction.atomic():
            self._tenant_for_update(config.tenant_id)
            config.refresh_from_db(fields=["is_active"])
            if config.is_active:
                config.is_active = False
                config.save(update_fields=["is_active", "updated_at"])
                record_config_event("deactivate", config, {"is_active": [True, False]})
        return config

    def delete_provider_config(self, *, config: ProviderConfig) -> None:
        with transaction.atomic():
            values, secrets = config_values(config)
            changes = audit.deleted(values, secrets=secrets)
            if config.api_key_encrypted:
                changes["api_key"] = audit.CHANGED
            record_config_event("delete", config, changes)
            config.delete()

    def get_active_config(self, tenant_id: str | int) -> ProviderConfig | None:
        return ProviderConfig.objects.for_tenant(tenant_id).active().first()

    def get_api_key(self, tenant_id: str | int) -> str | None:
        """The active config's decrypted key, or None when there is no config or key.

        Raises UndecryptableKeyError rather than ever returning ciphertext.
        """
        config = self.get_active_config(tenant_id)
        if config is None:
            return None
        return decrypted_api_key(config)

    # -- helpers ---------------------------------------------------------------------
    def _tenant_for_update(self, tenant_id, *, create: bool = False):
        # Locking the tenant row serialises activations of one tenant (PostgreSQL); on
        # SQLite, IMMEDIATE transactions already serialise writers.
        tenant_model = get_tenant_model()
        try:
            return tenant_model.objects.select_for_update().get(pk=tenant_id)
        except (ValueError, ValidationError):
            # An id of the wrong type for the model's primary key (e.g. "abc" for an int).
            raise ValueError(f"Invalid tenant id {tenant_id!r}.") from None
        except tenant_model.DoesNotExist:
            if not create:
                raise
            if tenant_model._meta.label != "tenants.Tenant":
                raise ValueError(
                    f"Unknown tenant {tenant_id!r}: {tenant_model._meta.label} rows are "
                    "created by the host project, not by Switchyard."
                ) from None
        # The tenants service, so that the tenant's creation is audited too.
        return tenant_create(tenant_id=tenant_id, name=tenant_id)

    def clean_provider_config(self, config: ProviderConfig) -> None:
        """Raise ValidationError (by field) unless `config` may be saved; normalises base_url."""
        errors = {}
        if config.provider not in Provider.values:
            known = ", ".join(Provider.values)
            errors["provider"] = [f"Unknown provider {config.provider!r}; expected one of {known}."]
        if not config.default_model:
            errors["default_model"] = ["This field is required."]
        if config.base_url:
            try:
                config.base_url = validate_base_url(config.base_url)
            except UnsafeBaseURL as exc:
                errors["base_url"] = [str(exc)]
        elif resolution.requires_base_url(config.provider):
            errors["base_url"] = [f"A base URL is required for the {config.provider} provider."]
        if resolution.requires_api_key(config.provider) and not config.api_key_encrypted:
            errors["api_key"] = [f"An API key is required for {config.provider}."]
        if not isinstance(config.metadata, dict):
            errors["metadata"] = ["metadata must be a JSON object."]
        else:
            problems = metadata_problems(config.metadata, config.provider)
            if problems:
                errors["metadata"] = problems
        if errors:
            raise ValidationError(errors)


def _adapter(config: ProviderConfig):
    from ..providers import get_adapter

    return get_adapter(config.provider)


def decrypted_api_key(config: ProviderConfig) -> str | None:
    """The config's plaintext key, None when it has none; fail closed when undecryptable."""
    value = config.api_key_encrypted
    if isinstance(value, UndecryptableSecret):
        logger.warning(
            "provider config %s (tenant %s): stored key cannot be decrypted with "
            "FIELD_ENCRYPTION_KEY",
            config.pk,
            config.tenant_id,
        )
        raise UndecryptableKeyError()
    return value or None


llm_provider_service = ProviderConfigService()
