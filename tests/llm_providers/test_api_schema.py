"""The OpenAPI schema and its Swagger UI page: public, offline, every endpoint documented."""

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

API_OPERATIONS = {
    ("/api/llm/provider/configure", "post"),
    ("/api/llm/provider/status", "get"),
    ("/api/llm/provider/configs", "get"),
    ("/api/llm/provider/configs/{id}", "get"),
    ("/api/llm/provider/configs/{id}", "patch"),
    ("/api/llm/provider/configs/{id}", "delete"),
    ("/api/llm/provider/configs/{id}/activate", "post"),
    ("/api/llm/test", "post"),
    ("/api/llm/usage/stats", "get"),
    ("/api/llm/usage/logs", "get"),
}


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_public_even_with_a_bad_key():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-key")
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi: 3" in response.content


def test_schema_documents_every_endpoint_with_bearer_auth_and_the_error_shape(schema):
    operations = {
        (path, method): op
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/llm/")
    }
    assert API_OPERATIONS <= set(operations)
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for key in API_OPERATIONS:
        op = operations[key]
        assert op["security"] == [{"bearerAuth": []}], key
        assert op.get("summary"), key
        errors = {code for code in op["responses"] if code.startswith(("4", "5"))}
        assert {"401", "503"} <= errors, key
        for code in errors:
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (key, code)
    assert {"400", "413", "415"} <= set(
        operations[("/api/llm/provider/configure", "post")]["responses"]
    )
    assert "429" in operations[("/api/llm/test", "post")]["responses"]
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"code", "message", "details"}


def test_no_request_schema_lets_a_client_name_a_tenant(schema):
    for name, component in schema["components"]["schemas"].items():
        assert "tenant" not in component.get("properties", {}), name
        assert "tenant_id" not in component.get("properties", {}), name


def test_docs_page_is_public_and_served_without_a_cdn():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com"):
        assert cdn not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert APIClient().get(asset).status_code == 200, asset
