"""Fixtures for the metrics and tracing tests: a local provider config, spans in memory."""

import pytest

from llm_providers.gateway import cache
from llm_providers.observability import tracing
from tests.llm_providers.conftest import (  # noqa: F401 (fixtures used by the tests here)
    _fresh_sessions,
    local_config_for,
    waits,
)
from tests.support.wire import LOCAL_KEY, openai_reply  # noqa: F401 (the tests import them)

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


@pytest.fixture(autouse=True)
def _fresh_gateway_cache(settings):
    settings.LLM_DEFAULT_PROVIDER = ""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def upstream_config(httpserver, local_config_for):  # noqa: F811
    return local_config_for(httpserver.url_for("/v1"), api_key=LOCAL_KEY, model=MODEL)


@pytest.fixture
def spans():
    """Spans go to memory for this test (synchronously); tracing is off again after it."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    yield exporter
    tracing.reset()


def post_chat(client, api_key, body=None, **headers):
    body = body or {"messages": [{"role": "user", "content": "The secret plan is X"}]}
    return client.post(
        CHAT,
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
        **headers,
    )
