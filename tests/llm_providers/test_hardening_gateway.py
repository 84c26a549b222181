"""/v1 refuses control characters and JSON bombs with an OpenAI-shaped 400 (issue 15.6, 15.11)."""

import json

import pytest
from django.test import Client

from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory

CHAT = "/v1/chat/completions"
USER = {"role": "user", "content": "x"}


@pytest.fixture
def post(api_key, tenant, httpserver):
    ProviderConfigFactory(
        tenant=tenant, provider="local", default_model="m", base_url=httpserver.url_for("/v1")
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}")

    def send(body):
        data = body if isinstance(body, bytes) else json.dumps(body)
        return client.post(CHAT, data=data, content_type="application/json")

    return send


def assert_openai_400(response, param, code="invalid_value"):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    return error


@pytest.mark.parametrize("model", ["gpt\u0000-4", "gpt-4\n", "gp\rt", "a\u001bb", "m\u007f"])
def test_control_characters_in_model_are_a_400_naming_the_field(post, httpserver, model):
    error = assert_openai_400(post({"model": model, "messages": [USER]}), "model")

    assert "control characters" in error["message"]
    assert len(httpserver.log) == 0
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "a\u0000b"}],
        [{"role": "user", "content": [{"type": "text", "text": "\u0000"}]}],
        [{"role": "user\u0000", "content": "x"}],
        [{"role": "user", "content": "x", "name\u0000": "y"}],
    ],
)
def test_nul_in_messages_is_a_400_naming_messages(post, httpserver, messages):
    assert_openai_400(post({"messages": messages}), "messages")
    assert len(httpserver.log) == 0


def test_newlines_and_tabs_in_content_are_fine(post, httpserver):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
    )
    response = post({"messages": [{"role": "user", "content": "line 1\n\tline 2"}]})

    assert response.status_code == 200, response.content


def test_deeply_nested_json_is_an_openai_shaped_400(post, httpserver):
    depth = 100_000
    body = b"[" * depth + b"]" * depth
    assert_openai_400(post(body), None, code="invalid_json")
    nested = b'{"messages": [{"role": "user", "content": ' + b"[" * depth + b"]" * depth + b"}]}"
    assert_openai_400(post(nested), None, code="invalid_json")
    assert len(httpserver.log) == 0
