from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenants import get_tenant_model
from tenants.context import acting_as, command_actor
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Issue another API key for a tenant (printed alone on the last line)."

    def add_arguments(self, parser):
        parser.add_argument("tenant_id")
        parser.add_argument("--name", default="default")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire the key after N days."
        )

    def handle(self, *args, **options):
        # Audit events written by this command name it as their actor.
        with acting_as(command_actor(__name__)):
            self._handle(**options)

    def _handle(self, *, tenant_id, name, expires_in_days, **options):
        tenant_model = get_tenant_model()  # SWITCHYARD_TENANT_MODEL: a string or integer pk
        try:
            tenant = tenant_model.objects.get(pk=tenant_id)
        except (tenant_model.DoesNotExist, ValueError, ValidationError):
            raise CommandError(f"Tenant {tenant_id!r} does not exist.") from None
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be positive.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        api_key, key = api_key_create(tenant=tenant, name=name, expires_at=expires_at)
        self.stdout.write(f"API key {api_key.prefix} issued for {tenant.pk}; shown once, below:")
        self.stdout.write(key)
