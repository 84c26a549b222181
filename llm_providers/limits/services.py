"""Operators' writes of a tenant's limits (admin, `set_llm_limits`); tenants have none."""

from django.db import transaction

from tenants import audit

from ..models import LimitCounters, TenantLLMLimits

LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "usd_per_day",
    "usd_per_month",
    "max_concurrent",
)


def _values(row: TenantLLMLimits | None) -> dict:
    return {field: _plain(getattr(row, field)) if row else None for field in LIMIT_FIELDS}


def _plain(value):
    return str(value) if value is not None and not isinstance(value, int) else value


@transaction.atomic
def limits_set(*, tenant_id: str, clear: bool = False, **changes) -> TenantLLMLimits | None:
    """Change the given limits (None removes one); `clear` removes the row. The row after.

    Audited (`tenant_limits.update`, `tenant_limits.delete`) in the same transaction, with
    the actor of the request or command that called it.
    """
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown limits: {sorted(unknown)}")
    existing = TenantLLMLimits.objects.select_for_update().filter(tenant_id=tenant_id).first()
    before = _values(existing)
    if clear:
        if existing is not None:
            existing.delete()  # post_delete clears the per-process cache
            audit.record(
                "tenant_limits.delete",
                tenant=tenant_id,
                target_type="tenant_limits",
                target_id=tenant_id,
                changes=audit.deleted(before),
            )
        return None
    row = existing or TenantLLMLimits(tenant_id=tenant_id)
    for field, value in changes.items():
        setattr(row, field, value)
    row.full_clean(exclude=["tenant"])
    row.save()
    LimitCounters.objects.get_or_create(tenant_id=tenant_id)
    changed = audit.diff(before, _values(row))
    if changed:
        audit.record(
            "tenant_limits.update",
            tenant=tenant_id,
            target_type="tenant_limits",
            target_id=tenant_id,
            changes=changed,
        )
    return row
