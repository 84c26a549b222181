"""CallOptions: per-call limits under the operator's settings as ceilings (issue 13 P3)."""

import json
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from werkzeug import Response

from llm_providers.engine.options import CallLimits, CallOptions
from llm_providers.errors import ErrorType
from llm_providers.gateway import cache
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from tests.support.wire import openai_reply


@pytest.fixture
def ceilings(settings):
    settings.LLM_REQUEST_TIMEOUT = 20.0
    settings.LLM_REQUEST_DEADLINE = None
    settings.LLM_MAX_RETRIES = 2
    return settings


def test_without_opinions_the_operators_settings_apply(ceilings):
    assert CallOptions().limits() == CallLimits(read_timeout=20.0, deadline=40.0, max_retries=2)


def test_a_configs_metadata_may_lower_the_settings(ceilings):
    options = CallOptions.from_metadata({"timeout": 5, "deadline": 7, "max_retries": 0})

    assert options.limits() == CallLimits(read_timeout=5.0, deadline=7.0, max_retries=0)


def test_a_configs_metadata_may_not_raise_the_settings(ceilings):
    options = CallOptions.from_metadata({"timeout": 100000, "deadline": 100000, "max_retries": 9})

    assert options.limits() == CallLimits(read_timeout=20.0, deadline=40.0, max_retries=2)


def test_the_deadline_defaults_to_twice_the_lowered_timeout_or_the_setting(ceilings):
    assert CallOptions(timeout=3).limits().deadline == 6.0
    ceilings.LLM_REQUEST_DEADLINE = 4.0
    assert CallOptions(timeout=3).limits().deadline == 4.0
    assert CallOptions(deadline=100).limits().deadline == 4.0


def test_metadata_values_that_are_not_limits_have_no_opinion(ceilings):
    options = CallOptions.from_metadata(
        {"timeout": "5", "deadline": -1, "max_retries": True, "other": 1}
    )

    assert options == CallOptions()


def test_capped_keeps_the_lower_of_each_limit():
    config = CallOptions(timeout=5, deadline=50, max_retries=None)
    call = CallOptions(timeout=9, deadline=30, max_retries=0)

    assert config.capped(call) == CallOptions(timeout=5, deadline=30, max_retries=0)
    assert config.capped(None) == config


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"deadline": -1}, {"timeout": "5"}, {"max_retries": -1}]
)
def test_options_that_are_not_limits_are_a_value_error(kwargs):
    with pytest.raises(ValueError):
        CallOptions(**kwargs)


def test_a_call_refuses_options_of_another_type(tenant):
    with pytest.raises(ValueError, match="CallOptions"):
        LLMService(tenant.pk).generate_completion("Hi", options={"timeout": 1})


def test_a_tenants_huge_timeout_is_cut_to_the_operators_on_the_wire(
    settings, httpserver, local_config_for
):
    # Issue 15 point 2: metadata may only lower LLM_REQUEST_TIMEOUT, never raise it.
    settings.LLM_REQUEST_TIMEOUT = 2
    settings.LLM_REQUEST_DEADLINE = None
    settings.LLM_MAX_RETRIES = 0
    release = threading.Event()

    def slow(request):
        release.wait(15)  # answers, but only long after the operator's timeout
        return Response(json.dumps(openai_reply("too late")), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(slow)
    config = local_config_for(httpserver.url_for("/v1"), metadata={"timeout": 100000})
    try:
        result = LLMService(config.tenant_id).generate_completion("Hi", max_tokens=5)
    finally:
        release.set()

    assert result.success is False
    assert result.error.type == ErrorType.TIMEOUT
    assert result.attempts == 1
    assert result.latency_ms < 15000  # it gave up before the server answered


def test_a_warm_v1_cache_looks_nothing_up_for_a_fallback_tenant(
    client, settings, httpserver, api_key
):
    # B5: the cache held None for fallback tenants, so each call resolved again (2 queries).
    settings.LLM_DEFAULT_PROVIDER = "local"
    settings.LLM_DEFAULT_MODEL = "gemma-3-270m"
    settings.LLM_DEFAULT_BASE_URL = httpserver.url_for("/v1")
    settings.LLM_GATEWAY_CACHE_SECONDS = 60
    httpserver.expect_request("/v1/chat/completions").respond_with_json(openai_reply())
    cache.clear()

    def call():
        return client.post(
            "/v1/chat/completions",
            {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
        )

    assert call().status_code == 200  # warms the key and the resolution
    with CaptureQueriesContext(connection) as queries:
        response = call()

    assert response.status_code == 200
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    rows = list(UsageLog.objects.for_tenant(api_key.tenant))
    assert [row.metadata["source"] for row in rows] == ["environment", "environment"]
    cache.clear()
