# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Embeddings (SPEC §13): LLMService.embed() and POST /v1/embeddings."""

import json
from decimal import Decimal

import openai
import pytest
import requests
import responses

from llm_providers.engine.results import EmbeddingResult
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from tests.factories import ProviderConfigFactory
from tests.support.wire import OPENAI_KEY

from .test_gateway import _fresh_gateway_cache, client, configure, sdk  # noqa: F401

VECTORS = [[0.25, -0.5, 0.125], [1.0, 0.0, -1.0]]


def embeddings_reply(vectors=VECTORS, model="text-embedding-3-small", tokens=1000):
    # Out of order on purpose: the index says which input a vector belongs to.
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return {
        "object": "list",
        "data": list(reversed(data)),
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@pytest.fixture
def embedding_config(tenant):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="openai",
        default_model="text-embedding-3-small",
        api_key=OPENAI_KEY,
    )


@responses.activate
def test_embed_sends_openais_request_and_records_one_priced_row(embedding_config):
    responses.post("https://api.openai.com/v1/embeddings", json=embeddings_reply())

    result = LLMService("tenant_123").embed(["first text", "second text"], dimensions=3)

    (call,) = responses.calls
    assert call.request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert json.loads(call.request.body) == {
        "model": "text-embedding-3-small",
        "input": ["first text", "second text"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert isinstance(result, EmbeddingResult) and result.success
    assert result.vectors == VECTORS  # in input order
    assert result.prompt_tokens == 1000
    # text-embedding-3-small: $0.02 per million tokens
    assert result.cost_usd == Decimal("0.00002000")
    row = UsageLog.objects.get()
    assert row.pk == result.usage_log_id
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens, row.success) == (
        "embedding",
        1000,
        0,
        True,
    )
    assert row.cost_usd == Decimal("0.00002000")


@responses.activate
def test_embed_a_single_string_on_a_local_server_is_free(local_config_for):
    local_config_for("http://127.0.0.1:8080/v1", model="nomic-embed")
    responses.post("http://127.0.0.1:8080/v1/embeddings", json=embeddings_reply(VECTORS[:1]))

    result = LLMService("tenant_123").embed("one text")

    assert json.loads(responses.calls[0].request.body)["input"] == ["one text"]
    assert result.vectors == VECTORS[:1] and result.cost_usd == Decimal(0)


@pytest.mark.parametrize("provider", ["anthropic", "groq"])
def test_providers_without_embeddings_answer_a_clear_invalid_request(provider, request):
    request.getfixturevalue(f"{provider}_config")
    with responses.RequestsMock() as mock:
        result = LLMService("tenant_123").embed(["x"])
        assert len(mock.calls) == 0

    assert not result.success
    assert result.error.type == "invalid_request"
    assert "embeddings" in result.error.message
    row = UsageLog.objects.get()
    assert (row.endpoint, row.error_type) == ("embedding", "invalid_request")


@responses.activate
def test_a_vector_count_that_does_not_match_is_a_bad_response(embedding_config):
    responses.post("https://api.openai.com/v1/embeddings", json=embeddings_reply(VECTORS[:1]))

    result = LLMService("tenant_123").embed(["a", "b"])

    assert result.error.type == "bad_response"


@pytest.mark.parametrize("inputs", [[], "", [""], [1, 2], None])
def test_bad_inputs_are_programming_errors(embedding_config, inputs):
    with pytest.raises(ValueError):
        LLMService("tenant_123").embed(inputs)


# -- /v1/embeddings ---------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["openai", "local"])
def test_sdk_embeddings_float_and_base64(provider, client, configure, httpserver, tenant):
    configure(provider)
    httpserver.expect_ordered_request("/v1/embeddings").respond_with_json(embeddings_reply())
    httpserver.expect_ordered_request("/v1/embeddings").respond_with_json(
        embeddings_reply(VECTORS[:1])
    )

    # The SDK asks for base64 by default and decodes it; ask for floats explicitly too.
    as_base64 = client.embeddings.create(model="m", input=["first text", "second text"])
    as_float = client.embeddings.create(model="m", input="first text", encoding_format="float")

    assert [d.embedding for d in as_base64.data] == VECTORS  # exact in float32
    assert as_float.data[0].embedding == VECTORS[0]
    assert as_base64.usage.prompt_tokens == 1000
    sent = json.loads(httpserver.log[0][0].data)
    assert sent == {
        "model": "m",
        "input": ["first text", "second text"],
        "encoding_format": "float",
    }
    rows = UsageLog.objects.for_tenant(tenant)
    assert [r.endpoint for r in rows] == ["embedding", "embedding"]
    assert all(r.metadata["via"] == "v1" for r in rows)


@pytest.mark.django_db(transaction=True)
def test_sdk_embeddings_on_an_anthropic_tenant_is_a_clear_400(client, configure, httpserver):
    configure("anthropic")

    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="m", input="x")

    assert "embeddings" in caught.value.body["message"]
    assert caught.value.body["type"] == "invalid_request_error"
    assert httpserver.log == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "colour": "blue"}, "colour"),
    ],
)
def test_malformed_embedding_requests_are_400_naming_the_field(
    live_server, api_key, configure, httpserver, body, param
):
    configure("openai")

    response = requests.post(
        f"{live_server.url}/v1/embeddings",
        json=body,
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert httpserver.log == []


@pytest.mark.django_db(transaction=True)
def test_langchain_openai_embeddings(live_server, api_key, configure, httpserver):
    from langchain_openai import OpenAIEmbeddings

    configure("local")
    httpserver.expect_request("/v1/embeddings").respond_with_json(embeddings_reply())
    # check_embedding_ctx_length=False: otherwise langchain tokenises with tiktoken first,
    # which downloads its tables from the internet.
    embedder = OpenAIEmbeddings(
        model="nomic-embed",
        base_url=f"{live_server.url}/v1",
        api_key=api_key.plain_key,
        check_embedding_ctx_length=False,
        max_retries=0,
    )

    assert embedder.embed_documents(["first text", "second text"]) == VECTORS
