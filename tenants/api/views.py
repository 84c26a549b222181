"""The base classes of every tenant API view: TenantAPIView and TenantViewSet.

They carry the authentication, the permission, `get_tenant()` and a queryset scoped to
the tenant (tests/tenants/test_api_bases.py walks the URL resolver and fails on any /api/
view that does not subclass one of them), and the REST setup below.

A host project keeps its own DRF defaults (session authentication, its own renderers and
exception handler) for its own API; Switchyard's views name theirs here, so that including
Switchyard's URLs needs no change to the host's REST_FRAMEWORK setting.
"""

from django.core.exceptions import ImproperlyConfigured
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics, viewsets
from rest_framework.renderers import JSONRenderer

from ..authentication import TenantAPIKeyAuthentication, TenantResolverAuthentication
from ..models import is_tenant_scoped
from ..permissions import IsTenantAuthenticated
from .exceptions import api_exception_handler
from .pagination import PageNumberPagination
from .parsers import JSONParser


class SwitchyardAPIMixin:
    """Authentication, permission, parser, renderer, pagination and error shape: the REST
    setup every Switchyard view carries itself, whatever the host's REST_FRAMEWORK."""

    authentication_classes = [TenantAPIKeyAuthentication, TenantResolverAuthentication]
    permission_classes = [IsTenantAuthenticated]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = PageNumberPagination
    filter_backends = [DjangoFilterBackend]

    def get_exception_handler(self):
        return api_exception_handler


class TenantScopedAPIMixin(SwitchyardAPIMixin):
    """The tenant of the request, and querysets narrowed to it: no view can forget it.

    `get_tenant()` is the authenticated tenant (never one named by the client). The
    queryset is narrowed with `for_tenant`, so another tenant's objects are simply not
    found (404). A view whose model's default manager is not tenant-scoped is refused
    when the class is made (and again when a request builds its queryset), so a new
    endpoint cannot serve unscoped rows by mistake.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        queryset = cls.__dict__.get("queryset")
        if queryset is not None:
            require_tenant_scoped(queryset.model, view=cls)

    def get_tenant(self):
        return self.request.user.tenant

    def get_queryset(self):
        queryset = super().get_queryset()
        require_tenant_scoped(queryset.model, view=type(self))
        return queryset.for_tenant(self.get_tenant())


def require_tenant_scoped(model, *, view) -> None:
    if not is_tenant_scoped(model):
        raise ImproperlyConfigured(
            f"{view.__qualname__} serves {model._meta.label}, whose default manager is not "
            "tenant-scoped (its queryset must be a tenants.models.TenantScopedQuerySet)."
        )


class TenantAPIView(TenantScopedAPIMixin, generics.GenericAPIView):
    """The base of every tenant API view (add DRF's model mixins for list/retrieve/…)."""


class TenantViewSet(TenantScopedAPIMixin, viewsets.GenericViewSet):
    """The base of every tenant API viewset (add DRF's model mixins as needed)."""


# What the URL-walking test and the docs name as the tenant API's bases.
TENANT_API_BASES = (TenantAPIView, TenantViewSet)
