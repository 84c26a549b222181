"""One error shape for every REST error, authentication on every endpoint, body limits."""

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from rest_framework.test import APIClient

from llm_providers.models import ProviderConfig
from tenants.api import exceptions as api_exceptions
from tests.factories import ProviderConfigFactory

from .api_support import assert_error, raw_post

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("post", "/api/llm/provider/configure"),
    ("get", "/api/llm/provider/status"),
    ("get", "/api/llm/provider/configs"),
    ("get", "/api/llm/provider/configs/{id}"),
    ("patch", "/api/llm/provider/configs/{id}"),
    ("delete", "/api/llm/provider/configs/{id}"),
    ("post", "/api/llm/provider/configs/{id}/activate"),
    ("post", "/api/llm/test"),
    ("get", "/api/llm/usage/stats"),
    ("get", "/api/llm/usage/logs"),
]
BODY = {"provider": "openai", "api_key": "sk-test-fake-key-0001", "default_model": "gpt-4o-mini"}


def _call(client, method, url, config):
    url = url.format(id=config.pk)
    if method in ("post", "patch"):
        return getattr(client, method)(url, BODY, format="json")
    return getattr(client, method)(url)


def _snapshot():
    return sorted(ProviderConfig.objects.values_list("id", "is_active", "default_model"))


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.usefixtures("no_network")
def test_every_endpoint_answers_401_without_a_key(tenant, method, url):
    config = ProviderConfigFactory(tenant=tenant)
    before = _snapshot()
    response = _call(APIClient(), method, url, config)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _snapshot() == before


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.usefixtures("no_network")
def test_every_endpoint_answers_401_with_a_wrong_key(tenant, api_key, method, url):
    config = ProviderConfigFactory(tenant=tenant)
    before = _snapshot()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.prefix}.wrongsecretwrongsecret")
    response = _call(client, method, url, config)
    assert_error(response, 401, "authentication_failed")
    assert _snapshot() == before


def test_revoked_key_is_refused(api_key, tenant_client):
    api_key.revoked = True
    api_key.save()
    assert_error(tenant_client.get("/api/llm/provider/status"), 401, "authentication_failed")


@pytest.mark.usefixtures("no_network")
def test_a_body_larger_than_the_limit_is_refused_with_413_before_anything_is_created(
    tenant_client, settings
):
    settings.API_MAX_BODY_BYTES = 1000
    body = '{"provider": "openai", "default_model": "%s"}' % ("m" * 2000)
    response = raw_post(tenant_client, "/api/llm/provider/configure", body)
    error = assert_error(response, 413, "request_too_large")
    assert error["details"] == {"max_bytes": 1000}
    assert not ProviderConfig.objects.exists()


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.usefixtures("no_network")
def test_every_endpoint_refuses_an_oversized_body_and_changes_nothing(
    tenant_client, settings, method, url
):
    settings.API_MAX_BODY_BYTES = 512
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    before = _snapshot()
    body = '{"default_model": "%s"}' % ("m" * 600)
    response = tenant_client.generic(
        method.upper(), url.format(id=config.pk), body, content_type="application/json"
    )
    assert_error(response, 413, "request_too_large")
    assert _snapshot() == before


def test_the_default_body_limit_is_one_mebibyte(tenant_client):
    body = '{"provider": "openai", "default_model": "%s"}' % ("m" * (1024 * 1024))
    response = raw_post(tenant_client, "/api/llm/provider/configure", body)
    assert_error(response, 413, "request_too_large")
    assert not ProviderConfig.objects.exists()


@pytest.mark.usefixtures("no_network")
def test_a_body_that_is_not_json_is_refused_with_415(tenant_client):
    response = raw_post(
        tenant_client, "/api/llm/provider/configure", "provider=openai", "text/plain"
    )
    assert_error(response, 415, "unsupported_media_type")
    assert not ProviderConfig.objects.exists()


def test_form_encoded_bodies_are_refused_with_415(tenant_client):
    response = raw_post(
        tenant_client,
        "/api/llm/provider/configure",
        "provider=openai&default_model=x",
        "application/x-www-form-urlencoded",
    )
    assert_error(response, 415, "unsupported_media_type")


def test_malformed_json_is_a_parse_error(tenant_client):
    response = raw_post(tenant_client, "/api/llm/provider/configure", '{"provider": "openai",')
    assert_error(response, 400, "parse_error")
    assert not ProviderConfig.objects.exists()


def test_absurdly_nested_json_is_a_parse_error_not_a_crash(tenant_client):
    body = "[" * 100_000 + "]" * 100_000
    response = raw_post(tenant_client, "/api/llm/provider/configure", body)
    assert_error(response, 400, "parse_error")
    assert not ProviderConfig.objects.exists()


def test_a_json_array_instead_of_an_object_is_a_validation_error(tenant_client):
    response = raw_post(tenant_client, "/api/llm/provider/configure", "[1, 2]")
    error = assert_error(response, 400, "validation_error")
    assert "non_field_errors" in error["details"]


def test_an_unsupported_method_is_405(tenant_client):
    response = tenant_client.put("/api/llm/provider/status", {}, format="json")
    assert_error(response, 405, "method_not_allowed")


def test_put_on_a_config_is_405_since_only_patch_is_offered(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    response = tenant_client.put(f"/api/llm/provider/configs/{config.pk}", BODY, format="json")
    assert_error(response, 405, "method_not_allowed")


def test_an_unknown_api_path_is_a_json_404(tenant_client):
    assert_error(tenant_client.get("/api/llm/nothing-here"), 404, "not_found")


def test_paths_outside_the_api_keep_django_html_errors(client):
    response = client.get("/definitely-not-a-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_django_server_errors_under_api_are_json_in_the_error_shape():
    request = RequestFactory().get("/api/llm/provider/status")
    response = api_exceptions.api_server_error(request)
    assert_error(response, 500, "server_error")


def test_a_database_outage_is_503_service_unavailable(tenant_client, monkeypatch):
    from llm_providers.usage import selectors

    def down(tenant):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "provider_status_for_tenant", down)
    assert_error(tenant_client.get("/api/llm/provider/status"), 503, "service_unavailable")


def test_a_config_deleted_while_being_activated_is_404(tenant_client, monkeypatch):
    from llm_providers.services import llm_provider_service

    config = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False)

    def vanished(**kwargs):
        raise ProviderConfig.DoesNotExist()

    monkeypatch.setattr(llm_provider_service, "activate", vanished)
    response = tenant_client.post(f"/api/llm/provider/configs/{config.pk}/activate")
    assert_error(response, 404, "not_found")


def test_a_lost_race_on_the_one_active_config_constraint_is_409(tenant_client, monkeypatch):
    from django.db import IntegrityError

    from llm_providers.services import llm_provider_service

    config = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False)

    def raced(**kwargs):
        raise IntegrityError("llm_provider_configs_one_active_per_tenant")

    monkeypatch.setattr(llm_provider_service, "activate", raced)
    response = tenant_client.post(f"/api/llm/provider/configs/{config.pk}/activate")
    assert_error(response, 409, "conflict")


def test_conflicts_are_409():
    response = api_exceptions.api_exception_handler(api_exceptions.Conflict(), {})
    assert response.status_code == 409
    assert response.data["error"]["code"] == "conflict"


def test_a_conflict_raised_with_a_specific_code_keeps_it():
    exc = api_exceptions.Conflict("No usable LLM provider.", code="llm_unavailable")
    response = api_exceptions.api_exception_handler(exc, {})
    assert response.status_code == 409
    assert response.data["error"] == {
        "code": "llm_unavailable",
        "message": "No usable LLM provider.",
        "details": {},
    }
