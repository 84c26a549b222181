"""Circuit breaker per config: open after N transient failures, cooldown, one probe."""

import json

import pytest
from werkzeug import Response

from llm_providers.engine.service import LLMService
from llm_providers.errors import ErrorType
from llm_providers.limits import breaker
from tests.factories import ProviderConfigFactory
from tests.support.upstream import chat_reply

pytestmark = pytest.mark.django_db


class Flaky:
    """An upstream answering 500 while `failing`, else a normal reply; counts requests."""

    def __init__(self, httpserver):
        self.failing = True
        self.requests = 0
        httpserver.expect_request("/v1/chat/completions").respond_with_handler(self)

    def __call__(self, request):
        self.requests += 1
        if self.failing:
            return Response(json.dumps({"error": {"message": "boom"}}), status=500)
        return Response(json.dumps(chat_reply("OK", 6, 2)), content_type="application/json")


@pytest.fixture
def flaky(httpserver, tenant, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_BREAKER_FAILURES = 5
    settings.LLM_BREAKER_WINDOW = 60
    settings.LLM_BREAKER_COOLDOWN = 30
    upstream = Flaky(httpserver)
    upstream.config = ProviderConfigFactory(
        tenant=tenant, provider="local", base_url=httpserver.url_for("/v1"), api_key=""
    )
    return upstream


def call(tenant):
    return LLMService(tenant.pk).generate_completion("hi", max_tokens=2)


def test_breaker_opens_skips_probes_once_and_closes(tenant, flaky, fake_clock):
    key = str(flaky.config.pk)
    for _ in range(4):
        assert call(tenant).error.type == ErrorType.SERVER_ERROR
    assert breaker.state(key)["state"] == "closed"
    assert call(tenant).error.type == ErrorType.SERVER_ERROR  # the 5th: open
    assert breaker.state(key) == {"state": "open", "failures": 5, "retry_in": 30.0}
    skipped = call(tenant)
    assert skipped.error.type == ErrorType.OVERLOADED
    assert skipped.error.retry_after == 30.0
    assert flaky.requests == 5  # skipped: the provider was not called
    fake_clock.now += 29.9
    assert call(tenant).error.type == ErrorType.OVERLOADED
    fake_clock.now += 0.2  # cooldown over: half-open, one probe goes through
    assert breaker.state(key)["state"] == "half_open"
    assert breaker.allow(key) == (True, None)  # another process took the probe…
    assert call(tenant).error.type == ErrorType.OVERLOADED  # …so this call waits
    breaker._drop_probe(key)
    flaky.failing = False
    assert call(tenant).success  # the probe succeeds: closed
    assert breaker.state(key)["state"] == "closed"
    assert call(tenant).success
    assert flaky.requests == 7


def test_failed_probe_opens_the_breaker_for_a_full_cooldown(tenant, flaky, fake_clock):
    key = str(flaky.config.pk)
    for _ in range(5):
        call(tenant)
    fake_clock.now += 31
    assert call(tenant).error.type == ErrorType.SERVER_ERROR  # the probe fails
    assert breaker.state(key)["state"] == "open"
    assert breaker.state(key)["retry_in"] == 30.0
    assert flaky.requests == 6


def test_failures_outside_the_window_do_not_count(tenant, flaky, fake_clock):
    key = str(flaky.config.pk)
    for _ in range(4):
        call(tenant)
    fake_clock.now += 61
    call(tenant)
    assert breaker.state(key) == {"state": "closed", "failures": 1, "retry_in": None}


def test_client_errors_never_open_the_breaker(tenant, httpserver, settings, fake_clock):
    settings.LLM_MAX_RETRIES = 0
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "bad"}}, status=400
    )
    config = ProviderConfigFactory(
        tenant=tenant, provider="local", base_url=httpserver.url_for("/v1"), api_key=""
    )
    for _ in range(8):
        assert call(tenant).error.type == ErrorType.INVALID_REQUEST
    assert breaker.state(str(config.pk))["state"] == "closed"
