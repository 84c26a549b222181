"""State-changing operations on tenants and their API keys."""

from datetime import datetime

from django.db import transaction

from .models import Tenant, TenantAPIKey


@transaction.atomic
def tenant_create(*, tenant_id: str, name: str = "") -> Tenant:
    tenant = Tenant(id=tenant_id, name=name or tenant_id)
    tenant.full_clean()
    tenant.save(force_insert=True)
    return tenant


def api_key_create(
    *, tenant, name: str = "default", expires_at: datetime | None = None
) -> tuple[TenantAPIKey, str]:
    """Issue a key for `tenant` (a SWITCHYARD_TENANT_MODEL row); the plain key is returned
    once and never stored."""
    return TenantAPIKey.objects.create_key(tenant=tenant, name=name, expiry_date=expires_at)


def api_key_revoke(*, api_key: TenantAPIKey) -> None:
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
