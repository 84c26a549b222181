"""`manage.py set_llm_limits TENANT_ID [--rpm N] [--tpm N] [--usd-per-day X] …` (SPEC §14)."""

from argparse import SUPPRESS
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from tenants import get_tenant_model
from tenants.context import acting_as, command_actor

from ...limits.services import limits_set

FIELDS = (
    ("rpm", "requests_per_minute"),
    ("tpm", "tokens_per_minute"),
    ("usd_per_day", "usd_per_day"),
    ("usd_per_month", "usd_per_month"),
    ("max_concurrent", "max_concurrent"),
)


def _count(value: str) -> int | None:
    if value.lower() in ("none", "null", ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a whole number.") from None
    if number < 0:
        raise CommandError(f"{value!r} must not be negative.")
    return number


def _usd(value: str) -> Decimal | None:
    if value.lower() in ("none", "null", ""):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{value!r} is not an amount in USD.") from None
    if not number.is_finite() or number < 0 or number >= Decimal("1e10"):
        raise CommandError(f"{value!r} must be between 0 and 9999999999.")
    return number


class Command(BaseCommand):
    help = (
        "Set a tenant's LLM limits (only the options given change; 'none' removes one), "
        "or remove them all with --clear. Prints the limits in effect."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant_id")
        parser.add_argument("--rpm", type=_count, help="requests per minute", default=SUPPRESS)
        parser.add_argument("--tpm", type=_count, help="tokens per minute", default=SUPPRESS)
        parser.add_argument("--usd-per-day", type=_usd, help="USD per UTC day", default=SUPPRESS)
        parser.add_argument(
            "--usd-per-month", type=_usd, help="USD per UTC month", default=SUPPRESS
        )
        parser.add_argument(
            "--max-concurrent", type=_count, help="concurrent calls", default=SUPPRESS
        )
        parser.add_argument("--clear", action="store_true", help="remove every limit")

    def handle(self, *args, **options):
        # Audit events written by this command name it as their actor.
        with acting_as(command_actor(__name__)):
            self._handle(**options)

    def _handle(self, *, tenant_id, clear, **options):
        if not get_tenant_model().objects.filter(pk=tenant_id).exists():
            raise CommandError(f"No tenant {tenant_id!r}.")
        # Options not given are absent (SUPPRESS); "none" given is None: remove that limit.
        given = {field: options[option] for option, field in FIELDS if option in options}
        if clear and given:
            raise CommandError("--clear removes every limit; give it alone.")
        row = limits_set(tenant_id=tenant_id, clear=clear, **given)
        if row is None:
            self.stdout.write(f"{tenant_id}: no limits")
            return
        parts = [f"{field}={getattr(row, field)}" for _, field in FIELDS]
        self.stdout.write(f"{tenant_id}: " + " ".join(parts))
