"""The /v1 stream relay (llm_providers/gateway/views.py, RelayResponse) under ASGI.

The relay iterates its source directly (no Django per-chunk wrapper) while no middleware has
replaced its content, and keeps the request's context itself: these tests hold it to both
halves of that — a log line written while the stream is relayed carries the request's id,
and a middleware that does replace the content is still honoured.
"""

import pytest
from asgiref.sync import markcoroutinefunction
from werkzeug import Response

from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory
from tests.llm_providers.test_streaming import OPENAI_STREAM
from tests.support.asgi import request, run, served

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_gateway")]

MODEL = "gpt-4o-mini"
BODY = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
# A stream the provider breaks off with an error event: the engine logs the failure while
# the relay is running, after the view has returned.
BROKEN_STREAM = (
    'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    'data: {"error":{"message":"The server had an error","type":"server_error"}}\n\n'
)


class UpperCaseStream:
    """A host middleware that replaces every streamed answer's content."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = await self.get_response(request)
        if response.streaming:
            response.streaming_content = self._upper(response.streaming_content)
        return response

    @staticmethod
    async def _upper(parts):
        async for part in parts:
            yield part.replace(b"Hel", b"HEL")


@pytest.fixture
def provider(httpserver, tenant):
    ProviderConfigFactory(
        tenant=tenant,
        provider="openai",
        default_model=MODEL,
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key="sk-relay-test-0001",
    )
    return httpserver


def headers(api_key, request_id):
    return [("authorization", f"Bearer {api_key.plain_key}"), ("x-request-id", request_id)]


def test_a_log_line_written_while_relaying_carries_the_requests_id(provider, api_key, console):
    provider.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(BROKEN_STREAM, mimetype="text/event-stream")
    )
    app = served()

    answer = run(
        request(
            app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers(api_key, "relay-1")
        )
    )

    assert answer.status == 200
    assert b'"error"' in answer.body  # the failure went to the client as an error event
    failed = [line for line in console.getvalue().splitlines() if "LLM call failed" in line]
    assert failed, console.getvalue()
    assert all("[relay-1]" in line for line in failed)
    assert UsageLog.objects.get().metadata["request_id"] == "relay-1"


def test_a_middleware_that_replaces_the_stream_is_honoured(provider, api_key, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.UpperCaseStream"]
    provider.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(OPENAI_STREAM, mimetype="text/event-stream")
    )
    app = served()

    answer = run(
        request(
            app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers(api_key, "relay-2")
        )
    )

    assert answer.status == 200
    assert b'"content":"HEL"' in answer.body
    assert answer.body.endswith(b"data: [DONE]\n\n")
    assert UsageLog.objects.get().success is True
