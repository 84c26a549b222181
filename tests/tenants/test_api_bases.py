"""Tenant scoping enforced, not remembered: every /api/ view subclasses the tenant API
bases (tenants/api/views.py), they refuse unscoped models, and a system check (E030)
refuses a tenant foreign key without a tenant-scoped default manager."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.test.utils import isolate_apps
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import mixins

from tenants import checks
from tenants.api.views import TENANT_API_BASES, TenantAPIView, TenantViewSet
from tenants.models import Tenant, TenantAPIKey, TenantScopedQuerySet
from tests.factories import TenantAPIKeyFactory, TenantFactory

# The OpenAPI schema and its page: public, no tenant.
NOT_TENANT_VIEWS = {"api-schema", "api-docs"}


def walk(patterns, prefix=""):
    """(route, url name, view class) of every URL pattern, includes followed."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            yield route, pattern.name, view


def api_views():
    return [
        (route, name, view)
        for route, name, view in walk(get_resolver().url_patterns)
        if route.startswith("api/") and name not in NOT_TENANT_VIEWS
    ]


def test_the_walk_finds_every_api_surface():
    routes = {route for route, _name, _view in api_views()}
    for expected in ("api/llm/provider/configure", "api/build/start", "api/audit/events"):
        assert expected in routes
    assert len(routes) >= 10


@pytest.mark.parametrize("route, name, view", api_views(), ids=lambda v: str(v))
def test_every_api_view_subclasses_a_tenant_api_base(route, name, view):
    assert view is not None, f"{route} ({name}) is not a class-based DRF view"
    assert issubclass(view, TENANT_API_BASES), (
        f"{route} ({name}): {view.__qualname__} must subclass TenantAPIView or TenantViewSet"
    )


def test_a_view_of_a_model_without_a_tenant_scoped_manager_is_refused_when_defined():
    from django.contrib.auth.models import Group

    with pytest.raises(ImproperlyConfigured, match="auth.Group.*not tenant-scoped"):

        class GroupsView(mixins.ListModelMixin, TenantAPIView):  # noqa: F841
            queryset = Group.objects.all()

    with pytest.raises(ImproperlyConfigured, match="GroupViewSet"):

        class GroupViewSet(TenantViewSet):  # noqa: F841
            queryset = Group.objects.all()


def test_the_queryset_is_scoped_per_request_and_checked_again(db):
    from django.contrib.auth.models import Group

    class Sneaky(TenantAPIView):
        queryset = TenantAPIKey.objects.all()

    mine, theirs = TenantFactory(id="mine"), TenantFactory(id="theirs")
    TenantAPIKeyFactory(tenant=mine)
    TenantAPIKeyFactory(tenant=theirs)
    view = Sneaky()
    view.request = type("R", (), {"user": type("U", (), {"tenant": mine})()})()
    assert {k.tenant_id for k in view.get_queryset()} == {"mine"}

    Sneaky.queryset = Group.objects.all()  # swapped after the class was made
    with pytest.raises(ImproperlyConfigured, match="not tenant-scoped"):
        view.get_queryset()


def test_every_model_with_a_tenant_key_in_the_project_has_a_scoped_manager():
    assert checks.check_tenant_scoped_managers() == []


@isolate_apps("tenants")
def test_a_tenant_foreign_key_without_a_scoped_default_manager_is_error_e030():
    class Unscoped(models.Model):  # noqa: DJ008
        tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)

        class Meta:
            app_label = "tenants"

    class ScopedQuerySet(TenantScopedQuerySet):
        pass

    class Scoped(models.Model):  # noqa: DJ008
        tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
        objects = ScopedQuerySet.as_manager()

        class Meta:
            app_label = "tenants"

    class NoTenant(models.Model):  # noqa: DJ008
        class Meta:
            app_label = "tenants"

    from django.apps import apps as global_apps

    isolated = Unscoped._meta.apps
    assert isolated is not global_apps
    errors = checks.check_tenant_scoped_managers(app_configs=[isolated.get_app_config("tenants")])
    assert [(e.id, e.obj) for e in errors] == [("tenants.E030", Unscoped)]
    assert "tenants.Unscoped has a foreign key to the tenant model (tenant)" in errors[0].msg
