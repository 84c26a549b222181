import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import Tenant, TenantAPIKey
from tests.factories import TenantFactory


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def last_line(output):
    return output.strip().splitlines()[-1]


def test_create_tenant_prints_a_working_key_alone_on_the_last_line(db):
    output = run("create_tenant", "tenant_123", "--name", "Acme")
    tenant = Tenant.objects.get(pk="tenant_123")
    assert tenant.name == "Acme"
    key = last_line(output)
    assert TenantAPIKey.objects.get_from_key(key).tenant == tenant
    assert " " not in key


def test_create_tenant_refuses_an_existing_id(db):
    TenantFactory(id="tenant_123")
    with pytest.raises(CommandError, match="already exists"):
        run("create_tenant", "tenant_123", "--name", "Again")


def test_create_tenant_refuses_an_invalid_id(db):
    with pytest.raises(CommandError):
        run("create_tenant", "bad id!", "--name", "X")
    assert not Tenant.objects.exists()


def test_create_api_key_issues_another_key(db):
    tenant = TenantFactory(id="tenant_123")
    first = last_line(run("create_api_key", "tenant_123"))
    second = last_line(run("create_api_key", "tenant_123", "--expires-in-days", "30"))
    assert first != second
    assert TenantAPIKey.objects.get_from_key(second).expiry_date is not None
    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 2


def test_create_api_key_for_an_unknown_tenant_fails(db):
    with pytest.raises(CommandError, match="does not exist"):
        run("create_api_key", "nobody")
