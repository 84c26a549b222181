"""The OpenAI-compatible /v1 gateway, driven through the official `openai` SDK.

Switchyard runs as a live server; the providers are faked by pytest-httpserver (a real
HTTP server on localhost), since streaming and disconnects are about the wire.
"""

import json
import threading

import openai
import pytest
import requests
from werkzeug import Response

from llm_providers.gateway import cache
from llm_providers.models import ProviderConfig, UsageLog
from tests.factories import ProviderConfigFactory, TenantAPIKeyFactory
from tests.support.processes import wait_until
from tests.support.wire import ANTHROPIC_KEY, GROQ_KEY, LOCAL_KEY, OPENAI_KEY, openai_reply

from .test_streaming import ANTHROPIC_STREAM, OPENAI_STREAM

pytestmark = pytest.mark.django_db(transaction=True)

# Where each provider's chat endpoint lives under its base URL on the fake upstream.
PROVIDERS = {
    "openai": ("/v1", "/v1/chat/completions", "gpt-4o-mini", OPENAI_KEY),
    "groq": ("/openai/v1", "/openai/v1/chat/completions", "llama-3.3-70b-versatile", GROQ_KEY),
    "local": ("/v1", "/v1/chat/completions", "gemma-3-270m", LOCAL_KEY),
    "anthropic": ("/v1", "/v1/messages", "claude-sonnet-4-5", ANTHROPIC_KEY),
}

ANTHROPIC_REPLY = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Bonjour."}],
    "stop_reason": "max_tokens",
    "stop_sequence": None,
    "usage": {"input_tokens": 21, "output_tokens": 4},
}


@pytest.fixture(autouse=True)
def _fresh_gateway_cache(settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_DEFAULT_PROVIDER = ""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def configure(tenant, httpserver):
    """Give `tenant` (or another) an active config of `provider` aimed at the fake upstream."""

    def make(provider, *, for_tenant=None, base_path=None, metadata=None):
        base, _, model, key = PROVIDERS[provider]
        return ProviderConfigFactory(
            tenant=for_tenant or tenant,
            provider=provider,
            default_model=model,
            base_url=httpserver.url_for(base_path or base).rstrip("/"),
            api_key=key,
            metadata=metadata or {},
        )

    return make


@pytest.fixture
def sdk(live_server):
    """OpenAI SDK clients on the live server, closed afterwards.

    Closing matters: a kept-alive connection keeps its server thread, and that thread's
    persistent database connection, alive past the test.
    """
    clients = []

    def make(key):
        clients.append(
            openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0, timeout=20)
        )
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(sdk, api_key):
    return sdk(api_key.plain_key)


def upstream_json(httpserver, provider, body, status=200, headers=None):
    path = PROVIDERS[provider][1]
    httpserver.expect_request(path, method="POST").respond_with_json(
        body, status=status, headers=headers
    )


def upstream_stream(httpserver, provider, text):
    path = PROVIDERS[provider][1]
    httpserver.expect_request(path, method="POST").respond_with_response(
        Response(text, mimetype="text/event-stream")
    )


def sent_to_upstream(httpserver):
    request, _ = httpserver.log[-1]
    return request, request.get_json()


def only_row(tenant):
    rows = list(UsageLog.objects.for_tenant(tenant))
    assert len(rows) == 1, rows
    return rows[0]


# -- plain completions -------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "groq", "local"])
def test_plain_completion_reaches_the_tenants_openai_shaped_provider(
    provider, client, configure, httpserver, tenant
):
    configure(provider)
    upstream_json(httpserver, provider, openai_reply("Hello there."))

    raw = client.chat.completions.with_raw_response.create(
        model=PROVIDERS[provider][2],
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=20,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello there."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == 5
    request, body = sent_to_upstream(httpserver)
    assert request.headers["Authorization"] == f"Bearer {PROVIDERS[provider][3]}"
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]
    # OpenAI's adapter sends the newer max_completion_tokens; the others max_tokens.
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 20
    row = only_row(tenant)
    assert (row.endpoint, row.provider, row.success) == ("chat", provider, True)
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_used) == (12, 5, 17)


def test_answer_carries_server_timing_with_provider_gateway_and_total(
    client, configure, httpserver
):
    configure("openai")
    upstream_json(httpserver, "openai", openai_reply())

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )

    timing = dict(part.strip().split(";dur=") for part in raw.headers["Server-Timing"].split(","))
    assert set(timing) == {"provider", "gateway", "total"}
    assert float(timing["total"]) >= float(timing["provider"]) > 0


def test_model_defaults_to_the_configs_when_the_request_names_none(
    live_server, api_key, configure, httpserver
):
    configure("openai")
    upstream_json(httpserver, "openai", openai_reply())

    response = requests.post(
        f"{live_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=20,
    )

    assert response.status_code == 200
    assert sent_to_upstream(httpserver)[1]["model"] == "gpt-4o-mini"


def test_anthropic_config_is_translated_both_ways(client, configure, httpserver, tenant):
    configure("anthropic")
    upstream_json(httpserver, "anthropic", ANTHROPIC_REPLY)

    completion = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
        ],
        temperature=0.2,
    )

    request, body = sent_to_upstream(httpserver)
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Answer in French."
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["max_tokens"] > 0  # required by Anthropic; the gateway supplies a default
    assert body["temperature"] == 0.2
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Bonjour."
    assert completion.choices[0].finish_reason == "length"  # from stop_reason max_tokens
    assert completion.model == "claude-sonnet-4-5-20250929"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 4)
    assert completion.usage.total_tokens == 25
    row = only_row(tenant)
    assert (row.provider, row.endpoint, row.tokens_used) == ("anthropic", "chat", 25)


def test_max_completion_tokens_becomes_anthropics_max_tokens(client, configure, httpserver):
    configure("anthropic")
    upstream_json(httpserver, "anthropic", ANTHROPIC_REPLY)

    client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "Hello"}],
        max_completion_tokens=33,
    )

    body = sent_to_upstream(httpserver)[1]
    assert body["max_tokens"] == 33
    assert "max_completion_tokens" not in body


# -- streaming ---------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "groq", "local"])
def test_streamed_completion_relays_chunks_and_records_usage(
    provider, client, configure, httpserver, tenant
):
    configure(provider)
    upstream_stream(httpserver, provider, OPENAI_STREAM)

    stream = client.chat.completions.create(
        model=PROVIDERS[provider][2],
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 2)
    body = sent_to_upstream(httpserver)[1]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    row = only_row(tenant)
    assert (row.success, row.endpoint, row.prompt_tokens, row.completion_tokens) == (
        True,
        "chat",
        9,
        2,
    )
    assert row.metadata["stream"] is True
    assert "client_disconnected" not in row.metadata


def test_usage_is_asked_of_the_provider_even_when_the_client_does_not_want_it(
    client, configure, httpserver, tenant
):
    configure("openai")
    upstream_stream(httpserver, "openai", OPENAI_STREAM)

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )

    assert all(c.usage is None for c in chunks)  # not sent to a client that did not ask
    assert sent_to_upstream(httpserver)[1]["stream_options"] == {"include_usage": True}
    assert only_row(tenant).tokens_used == 11


def test_anthropic_stream_is_translated_to_openai_chunks_ending_in_done(
    live_server, api_key, configure, httpserver, tenant
):
    configure("anthropic")
    upstream_stream(httpserver, "anthropic", ANTHROPIC_STREAM)

    response = requests.post(
        f"{live_server.url}/v1/chat/completions",
        json={
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=20,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "total;dur=" in response.headers["Server-Timing"]
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 15,
        "total_tokens": 45,
        # The 5 cache-read tokens, inside prompt_tokens, as OpenAI reports them.
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    row = only_row(tenant)
    assert (row.provider, row.prompt_tokens, row.completion_tokens) == ("anthropic", 30, 15)


def test_anthropic_stream_through_the_sdk(client, configure, httpserver):
    configure("anthropic")
    upstream_stream(httpserver, "anthropic", ANTHROPIC_STREAM)

    chunks = list(
        client.chat.completions.create(
            model="claude-sonnet-4-5",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
        )
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hi there"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_client_going_away_mid_stream_still_writes_the_row(client, configure, httpserver, tenant):
    configure("anthropic")
    release = threading.Event()
    hung_up = threading.Event()
    events = ANTHROPIC_STREAM.split("\n\n")
    head, tail = "\n\n".join(events[:4]) + "\n\n", "\n\n".join(events[4:])
    delta = (
        "event: content_block_delta\n"
        'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
        '"text":"."}}\n\n'
    )

    def slow_upstream():
        try:
            yield head.encode()  # message_start (input tokens) and the first text
            release.wait(10)
            # Deltas until the gateway, failing to write to its gone client, hangs up on
            # us (a write of ours then fails and this generator is closed); the count only
            # bounds a gateway that never notices, whose stream then ends normally.
            for _ in range(100_000):
                yield delta.encode()
            yield tail.encode()
        finally:
            hung_up.set()

    httpserver.expect_request("/v1/messages", method="POST").respond_with_response(
        Response(slow_upstream(), mimetype="text/event-stream")
    )

    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    release.set()

    assert hung_up.wait(15), "the gateway kept reading from the provider"
    row = wait_until(
        lambda: UsageLog.objects.for_tenant(tenant).first(), timeout=15, what="the usage row"
    )
    assert row.metadata.get("client_disconnected") is True
    assert row.metadata["stream"] is True
    assert row.prompt_tokens == 30  # what message_start reported was used


def test_error_after_the_stream_started_reaches_the_sdk_as_an_error(
    client, configure, httpserver, tenant
):
    configure("anthropic")
    broken = ANTHROPIC_STREAM.split("event: content_block_stop")[0] + (
        "event: error\n"
        'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    upstream_stream(httpserver, "anthropic", broken)

    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)
    row = only_row(tenant)
    assert (row.success, row.error_type) == (False, "overloaded")


# -- errors ------------------------------------------------------------------------------
def test_bad_tenant_key_is_401_in_openais_shape(sdk, configure, httpserver):
    configure("openai")
    bad = sdk("sy-not-a-real-key")

    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    assert len(httpserver.log) == 0


def test_missing_key_is_401(live_server):
    response = requests.post(
        f"{live_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}]},
        timeout=20,
    )

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Server-Timing"].startswith("total;dur=")


def test_revoked_key_is_refused_at_once_despite_the_cache(client, api_key, configure, httpserver):
    configure("openai")
    upstream_json(httpserver, "openai", openai_reply())
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])

    api_key.revoked = True
    api_key.save()

    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"model": "m"}).encode(), "messages"),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": ["hi"]}).encode(), "messages"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 9}).encode(),
            "temperature",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
            "max_tokens",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(),
            "stream",
        ),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 3}).encode(), "n"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), None),
    ],
)
def test_malformed_request_is_400_and_never_reaches_the_provider(
    body, param, live_server, api_key, configure, httpserver, tenant
):
    configure("openai")

    response = requests.post(
        f"{live_server.url}/v1/chat/completions",
        data=body,
        headers={
            "Authorization": f"Bearer {api_key.plain_key}",
            "Content-Type": "application/json",
        },
        timeout=20,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert len(httpserver.log) == 0
    assert not UsageLog.objects.for_tenant(tenant).exists()


def test_provider_rate_limit_is_429_with_retry_after(client, configure, httpserver, tenant):
    configure("openai")
    upstream_json(
        httpserver,
        "openai",
        {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}},
        status=429,
        headers={"retry-after": "7"},
    )

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.body["type"] == "rate_limit_error"
    assert "Server-Timing" in caught.value.response.headers
    assert only_row(tenant).error_type == "rate_limit"


def test_providers_401_is_a_502_upstream_authentication_without_the_key(
    client, configure, httpserver, tenant
):
    configure("openai")
    upstream_json(
        httpserver,
        "openai",
        {
            "error": {
                "message": f"Incorrect API key provided: {OPENAI_KEY}.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        status=401,
    )

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_authentication"
    assert OPENAI_KEY not in caught.value.response.text
    assert OPENAI_KEY not in only_row(tenant).error_message


@pytest.mark.parametrize(
    ("status", "expected", "error_type"),
    [
        (500, 502, "upstream_server_error"),
        (529, 503, "upstream_overloaded"),
        (404, 404, "not_found_error"),
    ],
)
def test_provider_failures_map_to_gateway_statuses_with_clear_types(
    status, expected, error_type, client, configure, httpserver
):
    configure("anthropic")
    upstream_json(
        httpserver,
        "anthropic",
        {"type": "error", "error": {"type": "some_error", "message": "upstream says no"}},
        status=status,
    )

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.status_code == expected
    assert caught.value.body["type"] == error_type


def test_unreachable_provider_is_502_connection_error(client, tenant):
    ProviderConfigFactory(
        tenant=tenant, provider="local", default_model="m", base_url="http://127.0.0.1:9/v1"
    )

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])

    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_connection_error"


def test_provider_that_does_not_answer_in_time_is_504(client, configure, httpserver):
    configure("openai", metadata={"timeout": 0.3, "deadline": 0.5})
    release = threading.Event()

    def never_answers(request):
        release.wait(10)
        return Response("{}", mimetype="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(never_answers)
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
    finally:
        release.set()

    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "upstream_timeout"


def test_tenant_without_a_usable_provider_gets_503(client, tenant):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "provider_not_configured"


def test_stream_that_fails_before_the_first_byte_is_a_plain_error(client, configure, httpserver):
    configure("openai")
    upstream_json(httpserver, "openai", {"error": {"message": "boom"}}, status=500)

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )

    assert caught.value.status_code == 502


# -- tenants -----------------------------------------------------------------------------
def test_other_tenants_config_is_never_reachable(
    sdk, client, configure, httpserver, tenant, other_tenant
):
    configure("openai", base_path="/mine/v1")
    configure("openai", for_tenant=other_tenant, base_path="/theirs/v1")
    httpserver.expect_request("/mine/v1/chat/completions").respond_with_json(openai_reply("mine"))
    httpserver.expect_request("/theirs/v1/chat/completions").respond_with_json(
        openai_reply("theirs")
    )
    other = sdk(TenantAPIKeyFactory(tenant=other_tenant).plain_key)
    messages = [{"role": "user", "content": "Hi"}]

    assert (
        client.chat.completions.create(model="m", messages=messages).choices[0].message.content
        == "mine"
    )
    assert (
        other.chat.completions.create(model="m", messages=messages).choices[0].message.content
        == "theirs"
    )
    assert UsageLog.objects.for_tenant(tenant).count() == 1
    assert UsageLog.objects.for_tenant(other_tenant).count() == 1


def test_models_lists_the_tenants_own_model_only(
    live_server, client, configure, tenant, other_tenant
):
    configure("anthropic")
    configure("groq", for_tenant=other_tenant)

    models = client.models.list()

    assert [m.id for m in models.data] == ["claude-sonnet-4-5"]
    assert models.data[0].owned_by == "anthropic"


def test_models_is_empty_without_a_usable_provider(client, tenant):
    assert client.models.list().data == []


def test_models_needs_the_tenant_key(live_server):
    response = requests.get(f"{live_server.url}/v1/models", timeout=20)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_config_change_is_seen_at_once_despite_the_cache(client, configure, httpserver, tenant):
    configure("openai", base_path="/first/v1")
    httpserver.expect_request("/first/v1/chat/completions").respond_with_json(openai_reply("1"))
    httpserver.expect_request("/second/v1/chat/completions").respond_with_json(openai_reply("2"))
    messages = [{"role": "user", "content": "Hi"}]
    assert (
        client.chat.completions.create(model="m", messages=messages).choices[0].message.content
        == "1"
    )

    # As llm_provider_service.activate does: deactivate by update(), save the new one.
    tenant.provider_configs.update(is_active=False)
    configure("openai", base_path="/second/v1")

    assert (
        client.chat.completions.create(model="m", messages=messages).choices[0].message.content
        == "2"
    )


def test_oversized_body_is_413(live_server, api_key, configure, httpserver, settings):
    configure("openai")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = requests.post(
        f"{live_server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x" * 2000}]},
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=20,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert len(httpserver.log) == 0


def test_wrong_method_is_405_in_openais_shape(live_server, api_key):
    response = requests.get(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key.plain_key}"},
        timeout=20,
    )

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_config_deleted_by_another_process_while_cached_still_gets_its_usage_row(
    client, configure, httpserver, tenant
):
    config = configure("openai")
    upstream_json(httpserver, "openai", openai_reply())
    assert cache.active_config(tenant.pk) == config  # now held in this process's cache
    # Another process deletes it: no signal reaches this process's cache.
    ProviderConfig.objects.filter(pk=config.pk)._raw_delete(using="default")

    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )

    assert completion.choices[0].message.content == "Hello there."
    row = only_row(tenant)
    assert row.provider_config_id is None
    assert row.metadata["provider_config_deleted"] is True
    assert row.tokens_used == 17


def test_stream_without_a_finish_reason_still_ends_properly(client, configure, httpserver):
    configure("local")
    upstream_stream(
        httpserver,
        "local",
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        "data: [DONE]\n\n",
    )

    chunks = list(
        client.chat.completions.create(
            model="gemma-3-270m", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hi"
    assert chunks[-1].choices[0].finish_reason == "stop"
