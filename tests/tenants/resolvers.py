"""Tenant resolvers as a host project writes them (SWITCHYARD_TENANT_RESOLVER), for tests."""

from tenants.models import Tenant


def tenant_of_logged_in_user(request):
    """The tenant whose id is the logged-in user's username (a host's own mapping)."""
    if not request.user.is_authenticated:
        return None
    return Tenant.objects.filter(pk=request.user.username).first()


def not_a_tenant(request):
    return "tenant_123"
