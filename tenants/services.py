"""State-changing operations on tenants and their API keys, each with its audit event."""

from datetime import datetime

from django.db import transaction

from . import audit
from .models import Tenant, TenantAPIKey

TENANT_FIELDS = ("name", "is_active")
API_KEY_FIELDS = ("name", "expiry_date", "revoked")


def _tenant_values(tenant: Tenant) -> dict:
    return {name: getattr(tenant, name) for name in TENANT_FIELDS}


def _key_values(api_key: TenantAPIKey) -> dict:
    expiry = api_key.expiry_date
    return {
        "prefix": api_key.prefix,
        "name": api_key.name,
        "expiry_date": expiry.isoformat() if expiry else None,
        "revoked": api_key.revoked,
    }


@transaction.atomic
def tenant_create(*, tenant_id: str, name: str = "", is_active: bool = True) -> Tenant:
    tenant = Tenant(id=tenant_id, name=name or tenant_id, is_active=is_active)
    tenant.full_clean()
    tenant.save(force_insert=True)
    audit.record(
        "tenant.create",
        tenant=tenant,
        target_type="tenant",
        target_id=tenant.pk,
        changes=audit.created(_tenant_values(tenant)),
    )
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, **values) -> Tenant:
    """Change a tenant's name or is_active."""
    before = _tenant_values(type(tenant).objects.select_for_update().get(pk=tenant.pk))
    for name, value in values.items():
        if name not in TENANT_FIELDS:
            raise TypeError(f"tenant_update() got an unexpected field {name!r}")
        setattr(tenant, name, value)
    tenant.full_clean()
    tenant.save(update_fields=list(values))
    changes = audit.diff(before, _tenant_values(tenant))
    if changes:
        audit.record(
            "tenant.update",
            tenant=tenant,
            target_type="tenant",
            target_id=tenant.pk,
            changes=changes,
        )
    return tenant


@transaction.atomic
def tenant_delete(*, tenant: Tenant) -> None:
    """Delete a tenant with its keys, configs and usage; its audit events are kept."""
    audit.record(
        "tenant.delete",
        tenant=tenant,
        target_type="tenant",
        target_id=tenant.pk,
        changes=audit.deleted(_tenant_values(tenant)),
    )
    tenant.delete()


@transaction.atomic
def api_key_create(
    *, tenant, name: str = "default", expires_at: datetime | None = None
) -> tuple[TenantAPIKey, str]:
    """Issue a key for `tenant` (a SWITCHYARD_TENANT_MODEL row); the plain key is returned
    once and never stored (nor audited)."""
    api_key, key = TenantAPIKey.objects.create_key(tenant=tenant, name=name, expiry_date=expires_at)
    audit.record(
        "tenant_api_key.create",
        tenant=tenant,
        target_type="tenant_api_key",
        target_id=api_key.prefix,
        changes=audit.created(_key_values(api_key)),
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, api_key: TenantAPIKey) -> None:
    if api_key.revoked:
        return
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    audit.record(
        "tenant_api_key.revoke",
        tenant=api_key.tenant_id,
        target_type="tenant_api_key",
        target_id=api_key.prefix,
        changes={"revoked": [False, True]},
    )


@transaction.atomic
def api_key_update(*, api_key: TenantAPIKey, **values) -> TenantAPIKey:
    """Change a key's name or expiry (revoking goes through api_key_revoke)."""
    before = _key_values(TenantAPIKey.objects.get(pk=api_key.pk))
    for name, value in values.items():
        if name not in ("name", "expiry_date"):
            raise TypeError(f"api_key_update() got an unexpected field {name!r}")
        setattr(api_key, name, value)
    api_key.save(update_fields=list(values))
    changes = audit.diff(before, _key_values(api_key))
    if changes:
        audit.record(
            "tenant_api_key.update",
            tenant=api_key.tenant_id,
            target_type="tenant_api_key",
            target_id=api_key.prefix,
            changes=changes,
        )
    return api_key


@transaction.atomic
def api_key_delete(*, api_key: TenantAPIKey) -> None:
    audit.record(
        "tenant_api_key.delete",
        tenant=api_key.tenant_id,
        target_type="tenant_api_key",
        target_id=api_key.prefix,
        changes=audit.deleted(_key_values(api_key)),
    )
    api_key.delete()
