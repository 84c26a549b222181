"""First-run setup for `make run`: an admin user and a demo tenant with an API key.

Each secret is generated here and printed once. Later runs see that an admin user or a
tenant exists, say so, and print no secret.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from tenants.context import acting_as, command_actor
from tenants.models import Tenant
from tenants.services import api_key_create, tenant_create

from ._common import require_own_tenant_model

RULE = "=" * 72


def admin_url():
    # Where scripts/run.sh serves; both read the same variables.
    host = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    return f"http://{host}:{os.environ.get('PORT', '8000')}/admin/"


class Command(BaseCommand):
    help = (
        "On first run only: create an admin superuser with a generated password and a "
        "demo tenant with an API key, printing each secret once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--tenant-id", default="demo")
        parser.add_argument("--tenant-name", default="Demo tenant")

    def handle(self, *args, **options):
        # Audit events written by this command name it as their actor.
        with acting_as(command_actor(__name__)):
            self._handle(**options)

    def _handle(self, *, username, tenant_id, tenant_name, **options):
        shown = []
        with transaction.atomic():
            shown += self._admin_user(username)
            shown += self._demo_tenant(tenant_id, tenant_name)
        if shown:
            self.stdout.write(RULE)
            self.stdout.write("Shown once: note these now, they are not stored in plain text.")
            for line in shown:
                self.stdout.write(f"  {line}")
            self.stdout.write(RULE)

    def _admin_user(self, username):
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(
                f"Admin user {existing.get_username()!r} exists (forgot the password? "
                f"`.venv/bin/python manage.py changepassword {existing.get_username()}`)."
            )
            return []
        password = secrets.token_urlsafe(18)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created admin user {username!r}."))
        return [
            f"Admin:    {admin_url()}",
            f"Username: {username}",
            f"Password: {password}",
        ]

    def _demo_tenant(self, tenant_id, tenant_name):
        require_own_tenant_model()
        # Only on an empty installation: a deleted demo tenant is not brought back.
        if Tenant.objects.exists():
            self.stdout.write(
                f"Tenants exist ({Tenant.objects.count()}); no demo tenant created "
                "(new key: `.venv/bin/python manage.py create_api_key TENANT_ID`)."
            )
            return []
        tenant = tenant_create(tenant_id=tenant_id, name=tenant_name)
        api_key, key = api_key_create(tenant=tenant, name="demo")
        self.stdout.write(self.style.SUCCESS(f"Created demo tenant {tenant.pk!r}."))
        return [
            f"Tenant:   {tenant.pk}",
            f"API key:  {key}",
            f"          (use it as `Authorization: Bearer <key>`; prefix {api_key.prefix})",
        ]
