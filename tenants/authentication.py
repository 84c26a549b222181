"""Who the tenant of a request is: a tenant API key, or the host project's own resolver.

- `Authorization: Bearer <tenant API key>` (TenantAPIKeyAuthentication): always available.
- SWITCHYARD_TENANT_RESOLVER: the dotted path of a host callable `(request) -> tenant or
  None`, so that a host project's logged-in users (sessions, its own tokens) reach the REST
  API and /v1 without Switchyard keys. It is asked only when the request carries no
  Bearer key (a wrong key is a 401, never a fall-through), gets Django's HttpRequest
  (`request.user` is set by the host's AuthenticationMiddleware), and must return a row of
  SWITCHYARD_TENANT_MODEL or None. Unsafe methods authenticated this way pass Django's CSRF
  check unless SWITCHYARD_TENANT_RESOLVER_CSRF is false (for resolvers that do not rely
  on a cookie).
"""

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework import authentication, exceptions

from . import get_tenant_model
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


def bearer_key(header: str | bytes | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header: the one parser of /api and /v1.

    None when there is no header or it names another scheme (the caller may then try the
    host's resolver). AuthenticationFailed for a Bearer header without exactly one key,
    or with a key that is not ASCII (keys never are).
    """
    if not header:
        return None
    if isinstance(header, str):
        # As DRF reads it: header strings are ISO-8859-1 (WSGI and ASGI alike).
        try:
            header = header.encode("iso-8859-1")
        except UnicodeEncodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
    parts = header.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Invalid API key.") from None


class TenantAPIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        key = bearer_key(authentication.get_authorization_header(request))
        if key is None:
            return None
        api_key = resolve_api_key(key)
        # Changes made by this request are audited as this key's.
        set_actor(f"api_key:{api_key.prefix}")
        return TenantPrincipal(api_key.tenant), api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class TenantResolverAuthentication(authentication.BaseAuthentication):
    """The host project's SWITCHYARD_TENANT_RESOLVER; nothing when it is not set."""

    def authenticate(self, request):
        tenant = resolve_request_tenant(request._request)
        if tenant is None:
            return None
        return TenantPrincipal(tenant), None


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


@lru_cache(maxsize=4)
def _resolver(path: str):
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"SWITCHYARD_TENANT_RESOLVER {path!r} cannot be imported: {exc}"
        ) from None


def resolve_request_tenant(request):
    """The tenant SWITCHYARD_TENANT_RESOLVER gives for a Django request, or None.

    Raises AuthenticationFailed for a disabled tenant and PermissionDenied when CSRF
    protection applies and fails.
    """
    path = settings.SWITCHYARD_TENANT_RESOLVER
    if not path:
        return None
    tenant = _resolver(path)(request)
    if tenant is None:
        return None
    tenant_model = get_tenant_model()
    if not isinstance(tenant, tenant_model):
        # A host programming error, said plainly rather than half-working.
        raise ImproperlyConfigured(
            f"SWITCHYARD_TENANT_RESOLVER returned {type(tenant).__name__}, not a "
            f"{tenant_model._meta.label} or None."
        )
    if not tenant.is_active:
        raise exceptions.AuthenticationFailed("Tenant is disabled.")
    if settings.SWITCHYARD_TENANT_RESOLVER_CSRF:
        _enforce_csrf(request)
    # The audit actor: the host's own user when there is one (DRF replaces request.user
    # with the tenant principal afterwards), else the host's resolver.
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        set_actor(f"user:{user.get_username()}")
    else:
        set_actor("system")
    return tenant


def _enforce_csrf(request) -> None:
    """Django's CSRF check for unsafe methods, as DRF's SessionAuthentication does it."""

    def dummy_get_response(request):  # pragma: no cover - never called
        return None

    check = authentication.CSRFCheck(dummy_get_response)
    check.process_request(request)  # reads the CSRF cookie into request.META
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")
