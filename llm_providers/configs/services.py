"""Provider configuration operations (SPEC §4)."""

import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import transaction

from tenants.models import Tenant

from ..models import Provider, ProviderConfig
from .encryption import UndecryptableKeyError, UndecryptableSecret
from .urlsafety import UnsafeBaseURL, validate_base_url

logger = logging.getLogger(__name__)

UNSET = object()


class ProviderConfigService:
    """Create, change, activate and read tenants' provider configs."""

    def save_provider_config(
        self,
        *,
        tenant_id: str,
        provider: str,
        api_key: str = "",
        default_model: str,
        base_url: str = "",
        activate: bool = True,
        metadata: dict | None = None,
    ) -> uuid.UUID:
        """Create a config (activating it unless `activate=False`) and return its id.

        The tenant is created when it does not exist yet, so that an embedding
        application can hand Switchyard its own tenant ids.
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
            if activate:
                ProviderConfig.objects.for_tenant(tenant).active().update(is_active=False)
                config.is_active = True
            config.save(force_insert=True)
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
        if fields:
            config.save(update_fields=[*fields, "updated_at"])
        return config

    def activate(self, *, tenant_id: str, config_id) -> ProviderConfig:
        """Make `config_id` the tenant's active config, deactivating the other atomically."""
        with transaction.atomic():
            tenant = self._tenant_for_update(tenant_id)
            config = ProviderConfig.objects.for_tenant(tenant).get(pk=config_id)
            ProviderConfig.objects.for_tenant(tenant).active().exclude(pk=config.pk).update(
                is_active=False
            )
            if not config.is_active:
                config.is_active = True
                config.save(update_fields=["is_active", "updated_at"])
        return config

    def delete_provider_config(self, *, config: ProviderConfig) -> None:
        config.delete()

    def get_active_config(self, tenant_id: str) -> ProviderConfig | None:
        return ProviderConfig.objects.for_tenant(tenant_id).active().first()

    def get_api_key(self, tenant_id: str) -> str | None:
        """The active config's decrypted key, or None when there is no config or key.

        Raises UndecryptableKeyError rather than ever returning ciphertext.
        """
        config = self.get_active_config(tenant_id)
        if config is None:
            return None
        return decrypted_api_key(config)

    # -- helpers ---------------------------------------------------------------------
    def _tenant_for_update(self, tenant_id: str, *, create: bool = False) -> Tenant:
        # Locking the tenant row serialises activations of one tenant (PostgreSQL); on
        # SQLite, IMMEDIATE transactions already serialise writers.
        qs = Tenant.objects.select_for_update()
        try:
            return qs.get(pk=tenant_id)
        except Tenant.DoesNotExist:
            if not create:
                raise
        tenant = Tenant(id=tenant_id, name=tenant_id)
        tenant.full_clean()
        tenant.save(force_insert=True)
        return tenant

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
        elif config.provider == Provider.LOCAL:
            errors["base_url"] = ["A base URL is required for the local provider."]
        if (
            config.provider in (Provider.OPENAI, Provider.ANTHROPIC, Provider.GROQ)
            and not config.api_key_encrypted
        ):
            errors["api_key"] = [f"An API key is required for {config.provider}."]
        if not isinstance(config.metadata, dict):
            errors["metadata"] = ["metadata must be a JSON object."]
        if errors:
            raise ValidationError(errors)


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
