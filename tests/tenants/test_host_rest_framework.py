"""Switchyard's REST views do not depend on the host project's REST_FRAMEWORK setting."""

import pytest
from django.test import override_settings

# A host's own DRF defaults: session auth, its browsable API, its own permission default.
HOST_REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
}

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("host_rest_framework")]


@pytest.fixture
def host_rest_framework():
    with override_settings(REST_FRAMEWORK=HOST_REST_FRAMEWORK):
        yield


def test_no_key_is_a_401_in_switchyards_error_shape(api_client):
    response = api_client.get("/api/llm/provider/status")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_tenant_key_works(tenant_client):
    response = tenant_client.get("/api/llm/provider/configs")
    assert response.status_code == 200
    assert response.json()["count"] == 0  # Switchyard's pagination, not the host's


def test_bad_json_is_a_400_in_the_shape(tenant_client):
    response = tenant_client.post(
        "/api/llm/provider/configure", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
