"""Anthropic errors: the HTTP status decides whose fault it is (issue 15.18)."""

import json

import pytest
from django.core.cache import cache
from django.test import Client

from llm_providers.errors import ErrorType
from llm_providers.providers import get_adapter
from tests.factories import ProviderConfigFactory
from tests.support.wire import ANTHROPIC_KEY

OPENAI_SHAPED_401 = {
    "error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "x"}
}


@pytest.mark.parametrize(
    ("status", "body_type", "expected"),
    [
        (401, "invalid_request_error", ErrorType.AUTHENTICATION),
        (401, "rate_limit_error", ErrorType.AUTHENTICATION),
        (403, "invalid_request_error", ErrorType.PERMISSION),
        (500, "invalid_request_error", ErrorType.SERVER_ERROR),
        (429, "invalid_request_error", ErrorType.RATE_LIMIT),
        (400, "authentication_error", ErrorType.INVALID_REQUEST),
        # The body still narrows within the status's kind of fault:
        (400, "billing_error", ErrorType.QUOTA_EXCEEDED),
        (500, "overloaded_error", ErrorType.OVERLOADED),
        (500, "timeout_error", ErrorType.TIMEOUT),
    ],
)
def test_the_status_decides_and_the_body_only_narrows(status, body_type, expected):
    body = json.dumps({"type": "error", "error": {"type": body_type, "message": "m"}})

    assert get_adapter("anthropic").map_error(status, body).type == expected


def test_an_anthropic_401_with_an_openai_shaped_body_is_a_502_upstream_authentication(
    api_key, tenant, httpserver, settings
):
    settings.LLM_MAX_RETRIES = 0
    cache.clear()
    ProviderConfigFactory(
        tenant=tenant,
        provider="anthropic",
        default_model="claude-sonnet-4-5",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key=ANTHROPIC_KEY,
    )
    httpserver.expect_request("/v1/messages", method="POST").respond_with_json(
        OPENAI_SHAPED_401, status=401
    )

    response = Client(HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}").post(
        "/v1/chat/completions",
        data=json.dumps({"messages": [{"role": "user", "content": "Hi"}]}),
        content_type="application/json",
    )

    assert response.status_code == 502, response.content
    assert response.json()["error"]["code"] == "upstream_authentication"
    cache.clear()
