"""SWITCHYARD_TENANT_RESOLVER: a host project's own authentication reaches the REST API and
/v1 without Switchyard keys, and the Bearer key path keeps working beside it."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from tests.factories import ProviderConfigFactory, TenantAPIKeyFactory, TenantFactory

RESOLVER = "tests.tenants.resolvers.tenant_of_logged_in_user"
STATUS = "/api/llm/provider/status"
CONFIGURE = "/api/llm/provider/configure"
NEW_CONFIG = {"provider": "local", "base_url": "http://127.0.0.1:9/v1", "default_model": "m"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    return TenantFactory(id="acme")


@pytest.fixture
def logged_in(acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_user(username="acme", password="x"))
    return client


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_a_logged_in_user_reaches_the_rest_api_as_its_tenant(logged_in, acme):
    ProviderConfigFactory(tenant=acme, default_model="acme-model")
    response = logged_in.get(STATUS)
    assert response.status_code == 200
    assert response.json()["model"] == "acme-model"


def test_without_the_setting_a_session_is_no_credential(logged_in):
    response = logged_in.get(STATUS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_an_anonymous_request_is_still_401(acme):
    response = Client().get(STATUS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_bearer_keys_keep_working_beside_the_resolver(acme):
    other = TenantAPIKeyFactory(tenant=TenantFactory(id="other"))
    ProviderConfigFactory(tenant=other.tenant, default_model="other-model")
    response = Client().get(STATUS, HTTP_AUTHORIZATION=f"Bearer {other.plain_key}")
    assert response.status_code == 200
    assert response.json()["model"] == "other-model"


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_a_wrong_bearer_key_is_401_even_with_a_session(logged_in):
    response = logged_in.get(STATUS, HTTP_AUTHORIZATION="Bearer abcdefgh.wrong")
    assert response.status_code == 401


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_a_disabled_tenant_is_refused(logged_in, acme):
    acme.is_active = False
    acme.save()
    assert logged_in.get(STATUS).status_code == 401


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_unsafe_methods_by_session_need_the_csrf_token(logged_in, acme):
    response = logged_in.post(CONFIGURE, NEW_CONFIG, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    # The cookie a host's pages set, and the token its JavaScript sends back.
    secret = "a" * 32
    logged_in.cookies["csrftoken"] = secret
    response = logged_in.post(
        CONFIGURE, NEW_CONFIG, content_type="application/json", HTTP_X_CSRFTOKEN=secret
    )
    assert response.status_code == 201
    assert acme.provider_configs.count() == 1


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER, SWITCHYARD_TENANT_RESOLVER_CSRF=False)
def test_the_csrf_check_can_be_turned_off_for_cookieless_resolvers(logged_in, acme):
    response = logged_in.post(CONFIGURE, NEW_CONFIG, content_type="application/json")
    assert response.status_code == 201


@override_settings(SWITCHYARD_TENANT_RESOLVER="tests.tenants.resolvers.not_a_tenant")
def test_a_resolver_returning_something_else_is_a_clear_configuration_error(logged_in):
    with pytest.raises(ImproperlyConfigured, match="returned str"):
        Client(raise_request_exception=True).get(STATUS)


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_gateway_models_for_a_logged_in_user(logged_in, acme):
    ProviderConfigFactory(tenant=acme, default_model="acme-model")
    response = logged_in.get("/v1/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["acme-model"]


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_gateway_post_by_session_needs_the_csrf_token(logged_in, acme):
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    response = logged_in.post("/v1/chat/completions", body, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@override_settings(SWITCHYARD_TENANT_RESOLVER=RESOLVER)
def test_gateway_wrong_bearer_key_is_401_even_with_a_session(logged_in):
    response = logged_in.get("/v1/models", HTTP_AUTHORIZATION="Bearer abcdefgh.wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_gateway_without_the_setting_a_session_is_401(logged_in):
    assert logged_in.get("/v1/models").status_code == 401
