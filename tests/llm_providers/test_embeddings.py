# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Embeddings (SPEC §13): LLMService.embed() and POST /v1/embeddings."""

import base64
import json
import struct
from decimal import Decimal

import openai
import pytest
import requests
import responses
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from llm_providers.engine.results import EmbeddingResult
from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from llm_providers.transport.asessions import aclose_sessions
from llm_providers.usage import spool
from tests.factories import ProviderConfigFactory
from tests.support.processes import closed_port_url
from tests.support.wire import ANTHROPIC_KEY, GROQ_KEY, OPENAI_KEY

from . import engines
from .test_async_engine import raw_server, read_request  # noqa: F401
from .test_gateway import _fresh_gateway_cache, client, configure, only_row, sdk  # noqa: F401

EMBEDDINGS = "/v1/embeddings"
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


@pytest.fixture(params=engines.ENGINES)
def engine(request):
    """The rules below hold for `embed` and `aembed` alike (one EmbedCall behind both)."""
    return request.param


@pytest.fixture
def embedding_config(tenant, httpserver):
    """OpenAI's adapter, aimed at a real local server (aiohttp and requests alike)."""
    return ProviderConfigFactory(
        tenant=tenant,
        provider="openai",
        default_model="text-embedding-3-small",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key=OPENAI_KEY,
    )


def test_embed_sends_openais_request_and_records_one_priced_row(
    engine, embedding_config, httpserver
):
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(embeddings_reply())

    result = engines.embed(
        engine, LLMService("tenant_123"), ["first text", "second text"], dimensions=3
    )

    ((request, _),) = httpserver.log
    assert request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert json.loads(request.data) == {
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
    assert (row.metadata["inputs"], row.metadata["dimensions"]) == (2, 3)


@responses.activate
def test_openais_embeddings_live_at_its_default_base_url(tenant):
    ProviderConfigFactory(
        tenant=tenant, provider="openai", default_model="text-embedding-3-small", api_key=OPENAI_KEY
    )
    responses.post("https://api.openai.com/v1/embeddings", json=embeddings_reply())

    result = LLMService("tenant_123").embed(["first text", "second text"])

    assert result.success and len(responses.calls) == 1


def test_embed_a_single_string_on_a_local_server_is_free(engine, local_config_for, httpserver):
    local_config_for(httpserver.url_for("/v1"), model="nomic-embed")
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(
        embeddings_reply(VECTORS[:1])
    )

    result = engines.embed(engine, LLMService("tenant_123"), "one text")

    sent = json.loads(httpserver.log[0][0].data)
    assert sent == {"model": "nomic-embed", "input": ["one text"], "encoding_format": "float"}
    assert "dimensions" not in sent  # only when asked for
    assert result.vectors == VECTORS[:1] and result.cost_usd == Decimal(0)
    row = UsageLog.objects.get()
    assert (row.endpoint, row.provider, row.prompt_tokens, row.cost_usd) == (
        "embedding",
        "local",
        1000,
        Decimal(0),
    )


@pytest.mark.parametrize("provider", ["anthropic", "groq"])
def test_providers_without_embeddings_answer_a_clear_invalid_request(
    engine, provider, tenant, httpserver
):
    ProviderConfigFactory(
        tenant=tenant,
        provider=provider,
        default_model="m",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key=ANTHROPIC_KEY if provider == "anthropic" else GROQ_KEY,
    )

    result = engines.embed(engine, LLMService("tenant_123"), ["x"])

    assert httpserver.log == []  # refused before any request
    assert not result.success
    assert result.error.type == "invalid_request"
    assert "embeddings" in result.error.message
    row = UsageLog.objects.get()
    assert (row.endpoint, row.error_type) == ("embedding", "invalid_request")


def test_a_vector_count_that_does_not_match_is_a_bad_response(engine, embedding_config, httpserver):
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(
        embeddings_reply(VECTORS[:1])
    )

    result = engines.embed(engine, LLMService("tenant_123"), ["a", "b"])

    assert result.error.type == "bad_response"
    row = UsageLog.objects.get()
    assert (row.endpoint, row.success, row.error_type) == ("embedding", False, "bad_response")


def test_a_provider_error_is_normalised_and_recorded(engine, embedding_config, httpserver):
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(
        {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}},
        status=401,
    )

    result = engines.embed(engine, LLMService("tenant_123"), ["a"])

    assert not result.success
    assert (result.error.type, result.error.status_code) == ("authentication", 401)
    assert result.cost_usd == Decimal(0)
    row = UsageLog.objects.get()
    assert (row.endpoint, row.error_type, row.status_code) == ("embedding", "authentication", 401)
    assert OPENAI_KEY not in json.dumps(row.metadata) + (row.error_message or "")


def test_an_unreachable_server_is_a_connection_error(engine, local_config_for):
    local_config_for(closed_port_url())

    result = engines.embed(engine, LLMService("tenant_123"), ["a"])

    assert result.error.type == ErrorType.CONNECTION
    assert UsageLog.objects.get().error_type == "connection"


def test_a_tenant_without_a_config_gets_a_configuration_error(engine, tenant, settings):
    settings.LLM_DEFAULT_PROVIDER = ""

    result = engines.embed(engine, LLMService("tenant_123"), ["a"])

    assert result.error.type == ErrorType.CONFIGURATION
    assert UsageLog.objects.get().endpoint == "embedding"


def test_vectors_of_another_size_than_dimensions_asked_are_an_error_naming_it(
    engine, local_config_for, httpserver
):
    """llama-server ignores `dimensions` (it answers full-size vectors): never silently."""
    local_config_for(httpserver.url_for("/v1"), model="nomic-embed")
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(embeddings_reply())

    result = engines.embed(engine, LLMService("tenant_123"), ["a", "b"], dimensions=2)

    assert json.loads(httpserver.log[0][0].data)["dimensions"] == 2
    assert not result.success and result.vectors == []
    assert (result.error.type, result.error.param) == ("invalid_request", "dimensions")
    assert "2 asked, 3 returned" in result.error.message
    row = UsageLog.objects.get()
    # The provider did the work: its tokens are on the row.
    assert (row.endpoint, row.success, row.error_type, row.prompt_tokens) == (
        "embedding",
        False,
        "invalid_request",
        1000,
    )


@pytest.mark.parametrize("inputs", [[], "", [""], [1, 2], None])
def test_bad_inputs_are_programming_errors(engine, embedding_config, inputs):
    with pytest.raises(ValueError):
        engines.embed(engine, LLMService("tenant_123"), inputs)
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize("dimensions", [0, -1, True, 1.5, "3"])
def test_bad_dimensions_are_programming_errors(engine, embedding_config, dimensions):
    with pytest.raises(ValueError):
        engines.embed(engine, LLMService("tenant_123"), ["a"], dimensions=dimensions)


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


# -- the async view under ASGI (Django's ASGI handler; the live server above is WSGI) -----
def asgi_post(path, body, key):
    """POST through Django's ASGI handler (an ASGIRequest: the async view's own path)."""

    async def go():
        try:
            return await AsyncClient().post(
                path,
                json.dumps(body),
                content_type="application/json",
                headers={"Authorization": f"Bearer {key}"},
            )
        finally:
            await aclose_sessions()

    return async_to_sync(go)()


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_the_async_view_embeds_through_aembed(
    api_key, configure, httpserver, tenant, encoding, monkeypatch
):
    configure("local")
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(embeddings_reply())
    # Proof that the async path serves: the sync method is not called.
    monkeypatch.setattr(LLMService, "embed", None)

    response = asgi_post(
        "/v1/embeddings",
        {"model": "m", "input": ["first text", "second text"], "encoding_format": encoding},
        api_key.plain_key,
    )

    assert response.status_code == 200, response.content
    body = response.json()
    vectors = [d["embedding"] for d in body["data"]]
    if encoding == "base64":
        vectors = [
            list(struct.unpack(f"<{len(v)}f", base64.b64decode(e)))
            for v, e in zip(VECTORS, vectors, strict=True)
        ]
    assert vectors == VECTORS
    assert body["usage"] == {"prompt_tokens": 1000, "total_tokens": 1000}
    assert "provider;dur=" in response["Server-Timing"]
    assert json.loads(httpserver.log[0][0].data)["input"] == ["first text", "second text"]
    row = only_row(tenant)
    assert (row.endpoint, row.metadata["via"], row.prompt_tokens) == ("embedding", "v1", 1000)


def test_the_async_view_answers_an_anthropic_tenant_with_a_clear_400(
    api_key, configure, httpserver, tenant
):
    configure("anthropic")

    response = asgi_post("/v1/embeddings", {"model": "m", "input": "x"}, api_key.plain_key)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "embeddings" in response.json()["error"]["message"]
    assert httpserver.log == []
    assert only_row(tenant).error_type == "invalid_request"


@pytest.mark.parametrize("served", ["asgi", "wsgi"])
def test_no_embedding_is_made_while_usage_writes_fail(
    served, api_key, configure, httpserver, live_server, tenant
):
    configure("local")
    spool.note_failure()
    try:
        body = {"model": "m", "input": "x"}
        if served == "asgi":
            response = asgi_post("/v1/embeddings", body, api_key.plain_key)
            status, error = response.status_code, response.json()["error"]
        else:
            response = requests.post(
                f"{live_server.url}/v1/embeddings",
                json=body,
                headers={"Authorization": f"Bearer {api_key.plain_key}"},
                timeout=10,
            )
            status, error = response.status_code, response.json()["error"]
    finally:
        spool.note_success()

    assert (status, error["code"]) == (503, "database_unavailable")
    assert httpserver.log == []
