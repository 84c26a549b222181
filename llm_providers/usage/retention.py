"""Usage retention: deleting raw usage rows whose days live on in the daily rollup.

Only whole UTC days that are rolled up and entirely older than the retention are pruned,
so every stats answer over whole days is the same before and after (the stats selector
reads those days from llm_usage_daily). The watermark `UsageRollupState.pruned_before`
moves first, in its own transaction, so no rollup run recomputes a day being emptied.
Rows go in small batches, each its own short transaction, per tenant (the
(tenant, created_at) index finds them without a scan): safe while serving.
"""

import logging
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from tenants import get_tenant_model

from ..models import UsageLog, UsageRollupState
from .rollup import day_start, utc_today

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000


def prunable_before(older_than_days: int, *, now: datetime | None = None) -> date | None:
    """The first day that must be kept: days before it are rolled up and old enough."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1.")
    now = now or timezone.now()
    state = UsageRollupState.objects.filter(pk=UsageRollupState.SINGLETON).first()
    if state is None:
        return None  # nothing rolled up yet: nothing may be pruned
    # A day is old enough when it ended at least `older_than_days` ago.
    return min(state.rolled_until, utc_today(now - timedelta(days=older_than_days)))


def usage_prune(
    *, older_than_days: int, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None
) -> int:
    """Delete raw usage rows of rolled-up days older than `older_than_days`; returns the count."""
    before = prunable_before(older_than_days, now=now)
    if before is None:
        logger.info("usage retention: nothing rolled up yet, nothing pruned")
        return 0
    with transaction.atomic():
        state = UsageRollupState.objects.select_for_update().get(pk=UsageRollupState.SINGLETON)
        # Re-read under the lock: a concurrent rebuild may have moved the watermark back.
        before = min(before, state.rolled_until)
        if state.pruned_before is None or state.pruned_before < before:
            state.pruned_before = before
            state.save(update_fields=["pruned_before", "updated_at"])
    cutoff = day_start(before)
    deleted = 0
    for tenant_id in get_tenant_model().objects.order_by("pk").values_list("pk", flat=True):
        deleted += _prune_tenant(tenant_id, cutoff, batch_size)
    logger.info("usage retention: %s usage rows before %s deleted", deleted, before)
    return deleted


def _prune_tenant(tenant_id: str, cutoff: datetime, batch_size: int) -> int:
    deleted = 0
    rows = UsageLog.objects.filter(tenant_id=tenant_id, created_at__lt=cutoff).order_by()
    while True:
        with transaction.atomic():
            ids = list(rows.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            # Through the ORM so build steps' references are set to null (SET_NULL).
            UsageLog.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
