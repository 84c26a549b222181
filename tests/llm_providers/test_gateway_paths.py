# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""/v1 completeness: unknown paths, the model list, and /v1 in the OpenAPI schema."""

import openai
import pytest
import requests

from .test_gateway import _fresh_gateway_cache, client, configure, sdk  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/completions"),
        ("get", "/v1/assistants"),
        ("post", "/v1/responses"),
        ("get", "/v1"),
        ("get", "/v1/"),
        ("post", "/v1/chat/completion"),
    ],
)
def test_unknown_v1_paths_are_openai_shaped_404_json(live_server, api_key, method, path):
    response = getattr(requests, method)(
        f"{live_server.url}{path}",
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=10,
    )

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"


def test_sdk_shows_a_real_error_for_an_unknown_path(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="m", prompt="Hi")
    assert "Unknown path" in str(caught.value)


def test_models_lists_the_default_and_the_configs_listed_models(client, configure):
    configure("openai", metadata={"models": ["gpt-4o", "gpt-4o-mini", "", 7]})

    ids = [m.id for m in client.models.list()]

    assert ids == ["gpt-4o-mini", "gpt-4o"]  # default first, no duplicates, no junk
    assert client.models.retrieve("gpt-4o").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5-pro")


def test_v1_is_in_the_openapi_schema(live_server):
    schema = requests.get(f"{live_server.url}/api/schema/?format=json", timeout=10).json()

    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/messages"):
        assert path in schema["paths"], path
    operation = schema["paths"]["/v1/chat/completions"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert "400" in operation["responses"]
