"""Tenant base URLs are checked against the address actually connected to (SPEC §10)."""

import pytest

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from tests.support.wire import openai_reply


@pytest.fixture
def upstream(httpserver):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(openai_reply("hi"))
    return httpserver


def test_loopback_base_url_is_allowed_by_the_default_allowlist(upstream, local_config_for):
    local_config_for(upstream.url_for("/v1"))

    assert LLMService("tenant_123").generate_completion("Hi").success


def test_address_outside_the_allowlist_is_refused_at_connect_time(
    upstream, local_config_for, settings
):
    # Saved while allowed (or via a name that resolved elsewhere then): the connection
    # itself is checked, so a name now pointing at loopback is refused before sending.
    local_config_for(upstream.url_for("/v1"))
    settings.LLM_BASE_URL_ALLOWLIST = []

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success is False
    assert result.error.type == ErrorType.CONFIGURATION
    assert "LLM_BASE_URL_ALLOWLIST" in result.error.message
    assert result.attempts == 1
    assert len(upstream.log) == 0  # nothing was sent
    assert UsageLog.objects.get().error_type == "configuration"


def test_operator_base_url_from_the_environment_is_not_checked(upstream, tenant, settings):
    settings.LLM_BASE_URL_ALLOWLIST = []
    settings.LLM_DEFAULT_PROVIDER = "local"
    settings.LLM_DEFAULT_MODEL = "gemma"
    settings.LLM_DEFAULT_BASE_URL = upstream.url_for("/v1")

    assert LLMService("tenant_123").generate_completion("Hi").success
