"""Reconciliation: bring the admission counters back to what the usage rows say.

Counters drift when a settlement is lost (a process killed between its call and its
settlement, a backend outage). For each tenant with limits, the counters become the
usage rows' totals in the current windows plus the holds still live. A call that settles
while its tenant is reconciled can be counted twice until the next run (the safe side).
"""

from django.db.models import Count, Q, Sum

from ..errors import ErrorType
from ..models import Endpoint, TenantLLMLimits, UsageLog
from . import clock
from .backends import get_backend
from .backends.base import Usage
from .policy import to_units, window_start, windows

# Rows of calls that never reached admission or were refused by it.
NOT_ADMITTED = [ErrorType.RATE_LIMITED, ErrorType.BUDGET_EXCEEDED, ErrorType.CONFIGURATION]


def usage_from_rows(tenant_id: str, now: float) -> Usage:
    minute, day, month = (window_start(k, now) for k in ("minute", "day", "month"))
    totals = (
        UsageLog.objects.filter(tenant_id=tenant_id, created_at__gte=month)
        .exclude(error_type__in=NOT_ADMITTED)
        .exclude(endpoint=Endpoint.VALIDATION)
        .aggregate(
            minute_requests=Count("id", filter=Q(created_at__gte=minute)),
            minute_tokens=Sum("tokens_used", filter=Q(created_at__gte=minute)),
            day_cost=Sum("cost_usd", filter=Q(created_at__gte=day)),
            month_cost=Sum("cost_usd"),
        )
    )
    return Usage(
        minute_requests=totals["minute_requests"] or 0,
        minute_tokens=totals["minute_tokens"] or 0,
        day_cost=to_units(totals["day_cost"]),
        month_cost=to_units(totals["month_cost"]),
    )


def reconcile_tenant(tenant_id: str):
    """(before, after) counters of one tenant."""
    now = clock.now()
    return get_backend().reconcile(tenant_id, usage_from_rows(tenant_id, now), windows(now))


def reconcile_all() -> dict:
    """Reconcile every tenant with a limits row; {tenant_id: (before, after)}."""
    backend = get_backend()
    backend.sweep(windows(clock.now()))
    return {
        tenant_id: reconcile_tenant(tenant_id)
        for tenant_id in TenantLLMLimits.objects.values_list("tenant_id", flat=True)
    }
