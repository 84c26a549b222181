"""manage.py bootstrap_local: the first-run admin user and demo tenant of `make run`."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tenants.models import Tenant, TenantAPIKey
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap_local", stdout=out)
    return out.getvalue()


def shown(output: str, label: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(\S+)$", output, re.MULTILINE)
    assert match, f"{label} not in output:\n{output}"
    return match.group(1)


def test_first_run_creates_an_admin_whose_printed_password_works():
    output = bootstrap()

    admin = get_user_model().objects.get(username=shown(output, "Username"))
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(shown(output, "Password"))


def test_first_run_creates_a_demo_tenant_whose_printed_key_is_valid():
    output = bootstrap()

    tenant = Tenant.objects.get(pk=shown(output, "Tenant"))
    key = shown(output, "API key")
    assert TenantAPIKey.objects.is_valid(key)
    assert TenantAPIKey.objects.get_from_key(key).tenant == tenant


def test_second_run_creates_nothing_and_prints_no_secret():
    first = bootstrap()
    password, key = shown(first, "Password"), shown(first, "API key")

    second = bootstrap()

    assert password not in second
    assert key not in second
    assert "Password" not in second and "API key" not in second
    assert "exists" in second
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert Tenant.objects.count() == 1
    assert TenantAPIKey.objects.count() == 1


def test_installation_with_tenants_gets_no_demo_tenant():
    TenantFactory(id="acme")

    output = bootstrap()

    assert list(Tenant.objects.values_list("pk", flat=True)) == ["acme"]
    assert "API key" not in output
    assert shown(output, "Password")  # the admin user is still created


def test_installation_with_a_superuser_gets_no_second_admin():
    get_user_model().objects.create_superuser(username="ops", password="not-shown-0001")

    output = bootstrap()

    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert "'ops' exists" in output
    assert "Password" not in output
