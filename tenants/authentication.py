"""`Authorization: Bearer <tenant API key>` authentication for the REST API."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from .context import set_actor
from .models import TenantAPIKey


class TenantPrincipal:
    """What `request.user` is for an API request: the tenant behind the key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, tenant):
        self.tenant = tenant
        self.pk = tenant.pk

    def __str__(self):
        return f"tenant:{self.tenant.pk}"


class TenantAPIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key = resolve_api_key(key)
        # Changes made by this request are audited as this key's.
        set_actor(f"api_key:{api_key.prefix}")
        return TenantPrincipal(api_key.tenant), api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


def resolve_api_key(key: str) -> TenantAPIKey:
    """The usable key for `key`, or AuthenticationFailed (one message for every cause)."""
    try:
        api_key = TenantAPIKey.objects.get_from_key(key)
    except TenantAPIKey.DoesNotExist:
        raise exceptions.AuthenticationFailed("Invalid API key.") from None
    if api_key.expiry_date is not None and api_key.expiry_date <= timezone.now():
        raise exceptions.AuthenticationFailed("API key has expired.")
    if not api_key.tenant.is_active:
        raise exceptions.AuthenticationFailed("Tenant is disabled.")
    return api_key
