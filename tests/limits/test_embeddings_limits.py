"""Embeddings count against the tenant's limits like chat calls, on both paths.

An embeddings call reserves its inputs' estimated tokens (it has no output) and their
price before it is sent, is refused without reaching the provider when that would break
a limit, and is settled with its actual tokens and cost.
"""

from decimal import Decimal

import pytest

from llm_providers import limits
from llm_providers.engine.service import LLMService
from llm_providers.errors import ErrorType
from llm_providers.limits.backends import get_backend
from llm_providers.limits.policy import to_units, windows
from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory
from tests.llm_providers import engines

from .conftest import DOLLAR_PER_TOKEN, set_limits

pytestmark = pytest.mark.django_db

EMBEDDINGS = "/v1/embeddings"


@pytest.fixture(params=engines.ENGINES)
def engine(request):
    return request.param


def embed(engine, tenant, inputs):
    service = LLMService(tenant.pk)
    if engine == "sync":
        return service.embed(inputs)
    return engines.run_async(lambda: service.aembed(inputs))


@pytest.fixture
def embedder(tenant, httpserver):
    """A local embeddings server whose every answer reports 5 input tokens ($0.05 here)."""
    httpserver.expect_request(EMBEDDINGS, method="POST").respond_with_json(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": "nomic-embed",
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
    )
    ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        default_model="nomic-embed",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key="",
        metadata=dict(DOLLAR_PER_TOKEN),
    )
    return httpserver


def test_embeddings_spend_the_budget_and_are_refused_before_reaching_the_provider(
    engine, tenant, embedder, fake_clock
):
    set_limits(tenant, usd_per_day=Decimal("0.20"))

    results = [embed(engine, tenant, "hi") for _ in range(6)]

    answered = [r for r in results if r.success]
    refused = [r for r in results if not r.success]
    assert answered and refused
    assert results == answered + refused  # refused once the budget left is too small
    assert {r.cost_usd for r in answered} == {Decimal("0.05")}
    assert {r.error.type for r in refused} == {ErrorType.BUDGET_EXCEEDED}
    assert len(embedder.log) == len(answered)  # a refused call is never sent
    usage = get_backend().counters(tenant.pk, windows(limits.clock.now()))
    assert usage.day_cost == to_units(Decimal("0.05") * len(answered))  # settled to cost
    assert usage.inflight == 0
    rows = UsageLog.objects.filter(tenant=tenant, endpoint="embedding").order_by("id")
    assert [r.success for r in rows] == [r.success for r in results]
    assert all(r.metadata["reserved_tokens"] > 0 for r in rows if r.success)
    assert all(r.metadata["limit"] == "usd_per_day" for r in rows if not r.success)


def test_embeddings_count_their_tokens_per_minute(engine, tenant, embedder, fake_clock):
    set_limits(tenant, tokens_per_minute=2)  # less than any input's estimate

    result = embed(engine, tenant, "hello there")

    assert result.error.type == ErrorType.RATE_LIMITED
    assert embedder.log == []
    row = UsageLog.objects.get(tenant=tenant)
    assert (row.endpoint, row.success, row.metadata["limit"]) == (
        "embedding",
        False,
        "tokens_per_minute",
    )


@pytest.mark.parametrize("served_by", ["wsgi", "asgi"])
def test_v1_embeddings_answers_carry_rate_limit_headers(
    served_by, client, api_key, tenant, embedder, fake_clock
):
    import json

    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    set_limits(tenant, requests_per_minute=2)
    body = json.dumps({"input": "hi", "model": "nomic-embed"})
    auth = f"Bearer {api_key.plain_key}"

    def post():
        if served_by == "wsgi":
            return client.post(
                "/v1/embeddings", body, content_type="application/json", HTTP_AUTHORIZATION=auth
            )

        async def over_asgi():
            from llm_providers.transport.asessions import aclose_sessions

            try:
                return await AsyncClient().post(
                    "/v1/embeddings",
                    body,
                    content_type="application/json",
                    headers={"authorization": auth},
                )
            finally:
                await aclose_sessions()  # this loop's provider connections

        return async_to_sync(over_asgi)()

    first = post()
    assert first.status_code == 200, first.content
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    assert post().status_code == 200
    refused = post()
    assert refused.status_code == 429
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert len(embedder.log) == 2
