"""The `local` provider against a real llama.cpp llama-server with Gemma 3 270M.

Outside `testpaths`, so `make test` never collects it; run `bash scripts/e2e.sh`
(`make test-e2e`), which starts the server and sets SWITCHYARD_E2E_BASE_URL.
"""

from decimal import Decimal

import pytest

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import LLMService, llm_provider_service

pytestmark = pytest.mark.e2e

MODEL_ALIAS = "gemma-3-270m"


@pytest.fixture
def llm(tenant, llama_base_url):
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk, provider="local", default_model=MODEL_ALIAS, base_url=llama_base_url
    )
    return LLMService(tenant.pk)


def test_completion_from_a_real_model_is_logged_with_tokens_and_zero_cost(llm):
    result = llm.generate_completion(
        "Name one primary colour.", max_tokens=24, system="Answer in one word.", temperature=0
    )

    assert result.success, result.error
    assert result.content.strip()
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.finish_reason in ("stop", "length")
    assert result.cost_usd == Decimal("0")
    log = UsageLog.objects.get(pk=result.usage_log_id)
    assert (log.provider, log.success, log.tokens_used) == ("local", True, result.tokens_used)


def test_max_tokens_is_honoured(llm):
    result = llm.generate_completion("Count from one to fifty.", max_tokens=3, temperature=0)

    assert result.success, result.error
    assert result.completion_tokens <= 3
    assert result.finish_reason == "length"


def test_model_list_names_the_served_model(llm):
    result = llm.list_models(timeout=10)

    assert result.success, result.error
    assert MODEL_ALIAS in result.models


def test_streaming_yields_text_and_records_usage(llm):
    stream = llm.stream_chat(
        [{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0
    )

    text = "".join(delta.text for delta in stream)

    assert stream.error is None
    assert text.strip()
    log = UsageLog.objects.get(pk=stream.result.usage_log_id)
    assert log.success and log.completion_tokens > 0 and log.metadata["stream"] is True


def test_unreachable_port_is_a_connection_error(tenant, llama_base_url):
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk,
        provider="local",
        default_model=MODEL_ALIAS,
        base_url="http://127.0.0.1:9/v1",
    )

    result = LLMService(tenant.pk).generate_completion("Hi", max_tokens=4)

    assert result.error.type == ErrorType.CONNECTION
