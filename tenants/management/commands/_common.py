"""Helpers shared by the tenants commands (a leading underscore: not a command itself)."""

from django.core.management.base import CommandError

from tenants.models import Tenant


def require_own_tenant_model() -> None:
    """Commands that create `tenants.Tenant` rows refuse when a host model replaces it."""
    if Tenant._meta.swapped:
        raise CommandError(
            f"SWITCHYARD_TENANT_MODEL is {Tenant._meta.swapped}: tenants are rows of that "
            "model, created by the host project; `create_api_key TENANT_ID` issues keys."
        )
