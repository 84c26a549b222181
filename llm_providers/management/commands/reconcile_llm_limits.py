"""`manage.py reconcile_llm_limits [TENANT_ID …]`: rebuild admission counters from usage rows."""

from django.core.management.base import BaseCommand

from ...limits.policy import from_units
from ...limits.reconcile import reconcile_all, reconcile_tenant


class Command(BaseCommand):
    help = (
        "Set every limited tenant's admission counters (or those of the tenants named) to "
        "their usage rows' totals in the current windows plus the calls still in flight, "
        "and release expired holds. Safe to run at any time, e.g. from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant_ids", nargs="*")

    def handle(self, *args, tenant_ids, **options):
        if tenant_ids:
            results = {t: reconcile_tenant(t) for t in tenant_ids}
        else:
            results = reconcile_all()
        for tenant_id, (before, after) in results.items():
            self.stdout.write(
                f"{tenant_id}: day ${from_units(before.day_cost)} -> "
                f"${from_units(after.day_cost)}, "
                f"month ${from_units(before.month_cost)} -> ${from_units(after.month_cost)}, "
                f"minute {before.minute_requests} -> {after.minute_requests} requests, "
                f"{before.minute_tokens} -> {after.minute_tokens} tokens, "
                f"in flight {before.inflight} -> {after.inflight}"
            )
        self.stdout.write(f"Reconciled {len(results)} tenant(s).")
