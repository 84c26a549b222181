from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.context import acting_as, command_actor
from tenants.models import Tenant
from tenants.services import api_key_create, tenant_create

from ._common import require_own_tenant_model


class Command(BaseCommand):
    help = "Create a tenant and issue its first API key (printed alone on the last line)."

    def add_arguments(self, parser):
        parser.add_argument("tenant_id")
        parser.add_argument("--name", default="")

    def handle(self, *args, **options):
        # Audit events written by this command name it as their actor.
        with acting_as(command_actor(__name__)):
            self._handle(**options)

    def _handle(self, *, tenant_id, name, **options):
        require_own_tenant_model()
        if Tenant.objects.filter(pk=tenant_id).exists():
            raise CommandError(f"Tenant {tenant_id!r} already exists.")
        try:
            tenant = tenant_create(tenant_id=tenant_id, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        api_key, key = api_key_create(tenant=tenant)
        self.stdout.write(f"Created tenant {tenant.pk} ({tenant.name}).")
        self.stdout.write(f"API key {api_key.prefix} issued; it is shown once, below:")
        self.stdout.write(key)
