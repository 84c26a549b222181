from rest_framework.permissions import BasePermission

from .authentication import TenantPrincipal


class IsTenantAuthenticated(BasePermission):
    """Allows requests authenticated with a tenant API key."""

    def has_permission(self, request, view):
        return isinstance(request.user, TenantPrincipal)
