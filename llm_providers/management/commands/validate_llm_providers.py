"""manage.py validate_llm_providers: check providers now and say which work (SPEC §8).

Exit status: 0 all usable, 1 any not usable, 2 nothing to validate or bad arguments.
"""

import argparse
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from llm_providers.validation import run_llm_startup_validation
from tenants import get_tenant_model

COLUMNS = ("tenant", "provider", "model", "status", "latency", "reason")


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError("the timeout must be between 0 and 600 seconds")
    return seconds


class Command(BaseCommand):
    help = "Check every active LLM provider config (and the environment fallback) now."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="ID", help="only this tenant's active config")
        parser.add_argument(
            "--mode",
            choices=["models", "ping"],
            help="models: the free model list (default); ping: a 1-token completion",
        )
        parser.add_argument(
            "--timeout", type=positive_seconds, metavar="S", help="per-provider timeout"
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the report as JSON"
        )

    def handle(self, *args, tenant=None, mode=None, timeout=None, as_json=False, **options):
        if tenant is not None and not _tenant_exists(tenant):
            raise CommandError(f"Unknown tenant {tenant!r}.", returncode=2)
        if mode is None:
            # An explicit run always checks something, even where start-up checks are off.
            configured = (settings.LLM_VALIDATION_MODE or "").strip().lower()
            mode = configured if configured in ("models", "ping") else "models"
        report = run_llm_startup_validation(tenant_id=tenant, mode=mode, timeout=timeout)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            self._print_table(report)
        if not report.checks:
            where = f"tenant {tenant!r} has no active config" if tenant else "no active configs"
            raise CommandError(f"Nothing to validate: {where}.", returncode=2)
        if not report.all_usable:
            bad = report.summary["total"] - report.summary["reachable"]
            raise CommandError(
                f"{bad} of {report.summary['total']} provider(s) not usable.", returncode=1
            )

    def _print_table(self, report):
        rows = [
            (
                check.tenant_id if check.source == "config" else "(environment)",
                check.provider,
                check.model or "-",
                str(check.status),
                f"{check.latency_ms} ms",
                check.reason or "",
            )
            for check in report.checks
        ]
        widths = [
            max([len(COLUMNS[i])] + [len(row[i]) for row in rows]) for i in range(len(COLUMNS) - 1)
        ]
        line = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        self.stdout.write(line.format(*(c.upper() for c in COLUMNS)).rstrip())
        for row in rows:
            style = self.style.SUCCESS if row[3] == "reachable" else self.style.WARNING
            self.stdout.write(style(line.format(*row).rstrip()))
        s = report.summary
        self.stdout.write(
            f"\n{s['total']} checked in {report.duration_ms} ms ({report.mode}): "
            f"{s['reachable']} reachable, {s['unreachable']} unreachable, "
            f"{s['unusable']} unusable"
        )


def _tenant_exists(tenant_id: str) -> bool:
    """Whether SWITCHYARD_TENANT_MODEL has this id (a word is no integer primary key)."""
    try:
        return get_tenant_model().objects.filter(pk=tenant_id).exists()
    except (ValueError, ValidationError):
        return False
