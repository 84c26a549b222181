"""tenants/checks.py: what `manage.py check` tells a host project."""

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks as django_checks
from django.test import override_settings

from tenants import checks, get_tenant_model
from tenants.conf import apply_defaults
from tenants.models import Tenant


def ids(messages):
    return [m.id for m in messages]


def test_the_reference_project_passes_every_switchyard_check():
    assert django_checks.run_checks(tags=[checks.TAG]) == []


def test_a_missing_app_names_it(monkeypatch):
    real = checks.apps.is_installed
    monkeypatch.setattr(
        checks.apps, "is_installed", lambda name: name != "rest_framework_api_key" and real(name)
    )
    errors = checks.check_installed_apps()
    assert ids(errors) == ["tenants.E001"]
    assert "'tenants' needs 'rest_framework_api_key'" in errors[0].msg


@pytest.mark.parametrize("value", [None, [], "", " , "])
def test_a_missing_field_encryption_key_is_an_error(value):
    with override_settings(FIELD_ENCRYPTION_KEY=value):
        if value is None:
            del settings.FIELD_ENCRYPTION_KEY
        assert ids(checks.check_field_encryption_key()) == ["tenants.E002"]


def test_an_invalid_field_encryption_key_is_named_by_position_never_shown():
    good = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEY=[good, "not-a-fernet-key"]):
        errors = checks.check_field_encryption_key()
    assert ids(errors) == ["tenants.E003"]
    assert "key 2" in errors[0].msg
    assert "not-a-fernet-key" not in errors[0].msg


def test_a_comma_separated_key_string_is_accepted():
    keys = ",".join(Fernet.generate_key().decode() for _ in range(2))
    with override_settings(FIELD_ENCRYPTION_KEY=keys):
        assert checks.check_field_encryption_key() == []


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("nope.Model", ["tenants.E011"]),
        ("not-a-label", ["tenants.E011"]),
        ("auth.Group", ["tenants.E014"]),  # integer pk, but no is_active
        ("llm_providers.ProviderConfig", ["tenants.E013"]),  # UUID pk
        ("auth.User", []),  # integer pk and a BooleanField is_active: usable
        ("tenants.Tenant", []),
    ],
)
def test_the_tenant_model_is_checked(label, expected):
    with override_settings(SWITCHYARD_TENANT_MODEL=label):
        assert ids(checks.check_tenant_model()) == expected


def test_get_tenant_model_follows_the_setting():
    assert get_tenant_model() is Tenant
    with override_settings(SWITCHYARD_TENANT_MODEL="auth.User"):
        from django.contrib.auth.models import User

        assert get_tenant_model() is User
        assert Tenant._meta.swapped == "auth.User"


@pytest.mark.parametrize("path", ["nope.resolver", "tests.tenants.resolvers.missing", 42])
def test_an_unusable_resolver_is_an_error(path):
    with override_settings(SWITCHYARD_TENANT_RESOLVER=path):
        assert ids(checks.check_tenant_resolver()) == ["tenants.E020"]


def test_a_resolver_that_imports_passes():
    resolver = "tests.tenants.resolvers.tenant_of_logged_in_user"
    with override_settings(SWITCHYARD_TENANT_RESOLVER=resolver):
        assert checks.check_tenant_resolver() == []


def test_missing_body_limit_middleware_and_immediate_tasks_are_warnings():
    middleware = [m for m in settings.MIDDLEWARE if m != checks.BODY_LIMIT_MIDDLEWARE]
    immediate = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    with override_settings(MIDDLEWARE=middleware, TASKS=immediate):
        assert ids(checks.check_rest_setup()) == ["tenants.W001", "tenants.W002"]


def test_defaults_fill_only_what_the_project_left_unset():
    with override_settings(API_PAGE_SIZE=7):
        del settings.LLM_MAX_RETRIES
        apply_defaults({"API_PAGE_SIZE": 50, "LLM_MAX_RETRIES": 2})
        assert settings.API_PAGE_SIZE == 7
        assert settings.LLM_MAX_RETRIES == 2
