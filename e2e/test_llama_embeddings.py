"""Embeddings against a real llama.cpp llama-server with Gemma 3 270M (make test-e2e).

scripts/e2e.sh starts llama-server with `--embeddings --pooling mean` (Gemma 3 is a
generative model: its vectors are the mean of its last hidden states); the same server
answers the chat tests. The vectors' size is the model's own embedding width, which
llama-server reports in its model list (`meta.n_embd`).

What llama-server does not support: `dimensions` (it answers full-size vectors whatever
is asked). Switchyard does not pass that off as an answer: the call is an
`invalid_request` naming `dimensions` (tested below).
"""

import math

import openai
import pytest
import requests

from llm_providers.models import UsageLog
from llm_providers.services import LLMService, llm_provider_service
from tests.llm_providers import engines

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL_ALIAS = "gemma-3-270m"
TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by four percent."]


@pytest.fixture(scope="module")
def embedding_width(llama_base_url):
    response = requests.get(f"{llama_base_url}/models", timeout=10)
    response.raise_for_status()
    (served,) = response.json()["data"]
    return served["meta"]["n_embd"]


@pytest.fixture
def llm(tenant, llama_base_url):
    llm_provider_service.save_provider_config(
        tenant_id=tenant.pk,
        provider="local",
        default_model=MODEL_ALIAS,
        base_url=llama_base_url,
    )
    return LLMService(tenant.pk)


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_embeddings_have_one_vector_per_text_of_the_models_width(llm, engine, embedding_width):
    result = engines.embed(engine, llm, TEXTS)

    assert result.success, result.error
    assert len(result.vectors) == len(TEXTS)
    assert [len(v) for v in result.vectors] == [embedding_width] * len(TEXTS)
    assert all(isinstance(x, float) and math.isfinite(x) for v in result.vectors for x in v)
    assert result.vectors[0] != result.vectors[1]  # different texts, different vectors
    assert result.prompt_tokens > 0
    row = UsageLog.objects.get(pk=result.usage_log_id)
    assert (row.endpoint, row.provider, row.success) == ("embedding", "local", True)
    assert row.prompt_tokens == result.prompt_tokens and row.completion_tokens == 0
    assert row.cost_usd == 0


def test_dimensions_llama_server_ignores_are_refused_not_passed_off(llm, embedding_width):
    result = llm.embed(TEXTS[:1], dimensions=8)

    assert not result.success
    assert (result.error.type, result.error.param) == ("invalid_request", "dimensions")
    assert f"8 asked, {embedding_width} returned" in result.error.message
    row = UsageLog.objects.get(pk=result.usage_log_id)
    assert (row.endpoint, row.success, row.error_type) == ("embedding", False, "invalid_request")


@pytest.mark.django_db(transaction=True)
def test_the_openai_sdk_gets_embeddings_through_v1(live_server, api_key, llm, embedding_width):
    client = openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=api_key.plain_key, max_retries=0, timeout=120
    )
    try:
        # The SDK asks for base64 by default (encoded by Switchyard), floats on request.
        as_base64 = client.embeddings.create(model=MODEL_ALIAS, input=TEXTS)
        as_float = client.embeddings.create(
            model=MODEL_ALIAS, input=TEXTS[0], encoding_format="float"
        )
    finally:
        client.close()

    assert [len(d.embedding) for d in as_base64.data] == [embedding_width] * len(TEXTS)
    assert len(as_float.data) == 1 and len(as_float.data[0].embedding) == embedding_width
    # float32 on the wire in base64: the same vector to float32 precision.
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
        for a, b in zip(as_base64.data[0].embedding, as_float.data[0].embedding, strict=True)
    )
    assert as_base64.usage.prompt_tokens > 0
    rows = UsageLog.objects.filter(endpoint="embedding", metadata__via="v1")
    assert len(rows) == 2 and all(r.success and r.prompt_tokens > 0 for r in rows)
