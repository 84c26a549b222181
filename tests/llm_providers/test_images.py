# ruff: noqa: F811  (the gateway fixtures are imported from test_gateway, then requested)
"""Image parts (data URLs and https URLs) to every provider that accepts them."""

import json

import pytest
import responses

from llm_providers.services import LLMService
from tests.support.wire import openai_reply

from .test_gateway import _fresh_gateway_cache, client, configure, sdk  # noqa: F401
from .wire_samples import anthropic_reply

PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"},
        },
    ],
}
ANTHROPIC_BLOCKS = [
    {"type": "text", "text": "What is in these images?"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
]


@responses.activate
def test_anthropic_gets_base64_and_url_image_blocks(anthropic_config):
    responses.post(
        "https://api.anthropic.com/v1/messages",
        json=anthropic_reply([{"type": "text", "text": "A pixel and a cat."}]),
    )

    result = LLMService("tenant_123").chat([IMAGE_MESSAGE])

    assert result.success
    body = json.loads(responses.calls[0].request.body)
    assert body["messages"] == [{"role": "user", "content": ANTHROPIC_BLOCKS}]


@pytest.mark.parametrize(
    "url",
    ["data:text/plain;base64,aGk=", "data:image/png,rawbytes", "ftp://example.com/a.png", ""],
)
def test_anthropic_refuses_images_it_cannot_take(anthropic_config, url):
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    _assert_refused(message)


def test_anthropic_refuses_an_image_detail_it_cannot_honour(anthropic_config):
    url = "https://example.com/cat.jpg"
    _assert_refused(
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url, "detail": "high"}}],
        }
    )


def _assert_refused(message):
    result = LLMService("tenant_123").chat([message])

    assert result.error.type == "invalid_request" and result.error.param == "messages"


@pytest.mark.parametrize("provider", ["openai", "groq"])
@responses.activate
def test_openai_shaped_providers_get_image_parts_as_sent(provider, request):
    request.getfixturevalue(f"{provider}_config")
    base = "https://api.openai.com/v1" if provider == "openai" else "https://api.groq.com/openai/v1"
    responses.post(f"{base}/chat/completions", json=openai_reply("A cat."))

    LLMService("tenant_123").chat([IMAGE_MESSAGE])

    assert json.loads(responses.calls[0].request.body)["messages"] == [IMAGE_MESSAGE]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["anthropic", "local"])
def test_sdk_image_parts_reach_the_provider(provider, client, configure, httpserver):
    configure(provider)
    if provider == "anthropic":
        httpserver.expect_request("/v1/messages").respond_with_json(
            anthropic_reply([{"type": "text", "text": "A cat."}])
        )
    else:
        httpserver.expect_request("/v1/chat/completions").respond_with_json(openai_reply("A cat."))

    reply = client.chat.completions.create(model="m", messages=[IMAGE_MESSAGE])

    assert reply.choices[0].message.content == "A cat."
    sent = json.loads(httpserver.log[0][0].data)["messages"][0]["content"]
    assert sent == (ANTHROPIC_BLOCKS if provider == "anthropic" else IMAGE_MESSAGE["content"])


@pytest.mark.django_db(transaction=True)
def test_sdk_gets_a_clear_400_for_an_image_anthropic_cannot_read(client, configure, httpserver):
    import openai

    configure("anthropic")
    message = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}],
    }

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[message])

    assert caught.value.body["param"] == "messages"
    assert "image" in caught.value.body["message"].lower()
    assert httpserver.log == []
