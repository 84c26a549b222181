"""The OpenAI-compatible presets (Gemini, Mistral, Azure OpenAI, OpenRouter, DeepSeek,
Together, Fireworks, xAI, Ollama, vLLM): exact wire requests, what each offers, prices,
and configuration through the REST API, the admin and validation."""

import datetime
import json
from decimal import Decimal

import pytest
import responses
from django.urls import reverse

from llm_providers.models import ProviderConfig, UsageLog
from llm_providers.services import LLMService
from llm_providers.usage import pricing
from tests.factories import ProviderConfigFactory, TenantFactory
from tests.support.wire import openai_reply

KEY = "preset-test-fake-key-0042"
AZURE_BASE = "https://acme.openai.azure.com/openai/v1"
VLLM_BASE = "http://127.0.0.1:8000/v1"
# provider → (base URL the requests go to, model, auth header, its value)
PRESETS = {
    "gemini": (
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "gemini-2.5-flash",
        "x-goog-api-key",
        KEY,
    ),
    "mistral": (
        "https://api.mistral.ai/v1",
        "mistral-small-latest",
        "Authorization",
        f"Bearer {KEY}",
    ),
    "azure": (AZURE_BASE, "my-gpt-4o-mini-deployment", "api-key", KEY),
    "openrouter": (
        "https://openrouter.ai/api/v1",
        "openai/gpt-4o-mini",
        "Authorization",
        f"Bearer {KEY}",
    ),
    "deepseek": ("https://api.deepseek.com/v1", "deepseek-chat", "Authorization", f"Bearer {KEY}"),
    "together": (
        "https://api.together.xyz/v1",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "Authorization",
        f"Bearer {KEY}",
    ),
    "fireworks": (
        "https://api.fireworks.ai/inference/v1",
        "accounts/fireworks/models/llama-v3p1-8b-instruct",
        "Authorization",
        f"Bearer {KEY}",
    ),
    "xai": ("https://api.x.ai/v1", "grok-3", "Authorization", f"Bearer {KEY}"),
    "ollama": ("http://127.0.0.1:11434/v1", "llama3.2", "Authorization", f"Bearer {KEY}"),
    "vllm": (VLLM_BASE, "Qwen/Qwen2.5-7B-Instruct", "Authorization", f"Bearer {KEY}"),
}
EMBEDDINGS = {"gemini", "mistral", "azure", "together", "fireworks", "ollama", "vllm"}
QUESTION = [{"role": "user", "content": "Hi"}]


def make_config(tenant, provider, **kwargs):
    base, model, _, _ = PRESETS[provider]
    needs_base = provider in ("azure", "vllm")
    return ProviderConfigFactory(
        tenant=tenant,
        provider=provider,
        default_model=model,
        api_key=KEY,
        base_url=base if needs_base else "",
        **kwargs,
    )


@pytest.mark.parametrize("provider", sorted(PRESETS))
@responses.activate
def test_chat_goes_to_the_presets_url_with_its_auth_header(provider, tenant):
    base, model, header, value = PRESETS[provider]
    make_config(tenant, provider)
    responses.post(f"{base}/chat/completions", json=openai_reply("Hello.", model=model))

    result = LLMService("tenant_123").chat(QUESTION, max_tokens=10)

    assert result.success and result.content == "Hello."
    (call,) = responses.calls
    assert call.request.url == f"{base}/chat/completions"  # the key is never in the URL
    assert KEY not in call.request.url
    assert call.request.headers[header] == value
    if header != "Authorization":
        assert "Authorization" not in call.request.headers
    body = json.loads(call.request.body)
    assert body["model"] == model and body["messages"] == QUESTION
    row = UsageLog.objects.get()
    assert (row.provider, row.success) == (provider, True)


@responses.activate
def test_mistral_quirks_seed_is_random_seed_and_no_stream_options(tenant):
    make_config(tenant, "mistral")
    base = PRESETS["mistral"][0]
    responses.post(
        f"{base}/chat/completions", body="data: [DONE]\n\n", content_type="text/event-stream"
    )

    list(LLMService("tenant_123").stream_chat(QUESTION, extra={"seed": 7}))

    body = json.loads(responses.calls[0].request.body)
    assert body["random_seed"] == 7 and "seed" not in body
    assert body["stream"] is True and "stream_options" not in body


@responses.activate
def test_azure_uses_max_completion_tokens_and_the_deployment_name(tenant):
    make_config(tenant, "azure")
    responses.post(f"{AZURE_BASE}/chat/completions", json=openai_reply())

    LLMService("tenant_123").chat(QUESTION, max_tokens=10)

    body = json.loads(responses.calls[0].request.body)
    assert body["max_completion_tokens"] == 10 and "max_tokens" not in body
    assert body["model"] == "my-gpt-4o-mini-deployment"


def test_deepseek_refuses_images_before_sending(tenant):
    make_config(tenant, "deepseek")
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}

    with responses.RequestsMock() as mock:
        result = LLMService("tenant_123").chat([{"role": "user", "content": [image]}])
        assert len(mock.calls) == 0

    assert result.error.type == "invalid_request" and result.error.param == "messages"
    assert "image" in result.error.message


@pytest.mark.parametrize("provider", sorted(PRESETS))
@responses.activate
def test_embeddings_where_offered_and_a_clear_error_where_not(provider, tenant):
    base, _, header, value = PRESETS[provider]
    make_config(tenant, provider)
    responses.post(
        f"{base}/embeddings",
        json={
            "data": [{"index": 0, "embedding": [0.5, 0.25]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        },
    )

    result = LLMService("tenant_123").embed("text", dimensions=2)

    if provider in EMBEDDINGS:
        assert result.success and result.vectors == [[0.5, 0.25]]
        body = json.loads(responses.calls[0].request.body)
        field = "output_dimension" if provider == "mistral" else "dimensions"
        assert body[field] == 2
        assert responses.calls[0].request.headers[header] == value
    else:
        assert result.error.type == "invalid_request"
        assert len(responses.calls) == 0


class _PeakHours(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 12, 1, 10, 0, tzinfo=tz or datetime.UTC)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        # per million: 1000 * 0.30 + 100 * 2.50 (gemini-2.5-flash)
        ("gemini", Decimal("0.00055000")),
        # 1000 * 0.27 + 100 * 1.10 (deepseek-chat)
        ("deepseek", Decimal("0.00038000")),
        # 1000 * 3 + 100 * 15 (grok-3)
        ("xai", Decimal("0.00450000")),
        ("ollama", Decimal("0")),  # self-hosted: free
        ("vllm", Decimal("0")),
    ],
)
@responses.activate
def test_presets_are_priced(provider, expected, tenant, monkeypatch, request):
    # Prices are taken at the call's time, and DeepSeek's are halved off-peak
    # (16:30-00:30 UTC): the expected figures are peak prices, so the clock says 10:00 UTC.
    monkeypatch.setattr(pricing, "datetime", _PeakHours)
    pricing._model_price.cache_clear()
    request.addfinalizer(pricing._model_price.cache_clear)  # no peak price left cached
    base, model, _, _ = PRESETS[provider]
    make_config(tenant, provider)
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    responses.post(f"{base}/chat/completions", json=openai_reply(model=model, usage=usage))

    assert LLMService("tenant_123").chat(QUESTION).cost_usd == expected


@pytest.mark.parametrize("provider", sorted(PRESETS))
@responses.activate
def test_validation_lists_models_with_the_presets_auth(provider, tenant):
    base, _, header, value = PRESETS[provider]
    make_config(tenant, provider)
    responses.get(f"{base}/models", json={"data": [{"id": "m1"}, {"id": "m2"}]})

    result = LLMService("tenant_123").list_models()

    assert result.success and result.models == ["m1", "m2"]
    assert responses.calls[0].request.headers[header] == value


# -- configuration: REST and admin ----------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(PRESETS))
def test_each_preset_can_be_configured_through_the_rest_api(provider, tenant_client):
    base, model, _, _ = PRESETS[provider]
    body = {"provider": provider, "default_model": model, "api_key": KEY}
    if provider in ("azure", "vllm"):
        body["base_url"] = base

    response = tenant_client.post("/api/llm/provider/configure", body, format="json")

    assert response.status_code == 201, response.content
    assert KEY not in response.content.decode()
    assert ProviderConfig.objects.get(pk=response.json()["id"]).provider == provider


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "azure", "default_model": "d", "api_key": KEY}, "base_url"),
        ({"provider": "vllm", "default_model": "m"}, "base_url"),
        ({"provider": "gemini", "default_model": "gemini-2.5-flash"}, "api_key"),
    ],
)
def test_presets_are_validated_when_configured(tenant_client, body, field):
    response = tenant_client.post("/api/llm/provider/configure", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


@pytest.mark.django_db
def test_ollama_needs_neither_key_nor_base_url(tenant_client):
    response = tenant_client.post(
        "/api/llm/provider/configure",
        {"provider": "ollama", "default_model": "llama3.2"},
        format="json",
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_the_admin_offers_and_saves_the_presets(admin_client):
    add = reverse("admin:llm_providers_providerconfig_add")
    page = admin_client.get(add).content.decode()
    for provider in PRESETS:
        assert f'value="{provider}"' in page
    tenant = TenantFactory()

    response = admin_client.post(
        add,
        {
            "tenant": tenant.pk,
            "provider": "gemini",
            "default_model": "gemini-2.5-flash",
            "api_key": KEY,
            "active": "on",
            "metadata": "{}",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ProviderConfig.objects.for_tenant(tenant).get().provider == "gemini"
