"""Operators' writes of a tenant's limits (admin, `set_llm_limits`); tenants have none."""

from django.db import transaction

from ..models import LimitCounters, TenantLLMLimits

LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "usd_per_day",
    "usd_per_month",
    "max_concurrent",
)


@transaction.atomic
def limits_set(*, tenant_id: str, clear: bool = False, **changes) -> TenantLLMLimits | None:
    """Change the given limits (None removes one); `clear` removes the row. The row after."""
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown limits: {sorted(unknown)}")
    if clear:
        for row in TenantLLMLimits.objects.filter(tenant_id=tenant_id):
            row.delete()  # one by one: post_delete clears the per-process cache
        return None
    row, _ = TenantLLMLimits.objects.get_or_create(tenant_id=tenant_id)
    for field, value in changes.items():
        setattr(row, field, value)
    row.full_clean(exclude=["tenant"])
    row.save()
    LimitCounters.objects.get_or_create(tenant_id=tenant_id)
    return row
