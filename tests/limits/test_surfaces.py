"""Limits where tenants and operators meet them: /v1, the REST API, builds, admin, commands."""

import json
import math
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from build_loop.models import Build, BuildStatus, StepStatus
from llm_providers.models import TenantLLMLimits, UsageLog
from tests.support.worker import run_worker_until_idle

from .conftest import set_limits

pytestmark = pytest.mark.django_db

CHAT = "/v1/chat/completions"


def v1(client, api_key, body):
    return client.post(
        CHAT,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
    )


BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_v1_answers_carry_rate_limit_headers_and_a_refusal_is_an_openai_429(
    client, api_key, tenant, priced_config, fake_clock
):
    set_limits(tenant, requests_per_minute=2, tokens_per_minute=1000)
    first = v1(client, api_key, BODY)
    assert first.status_code == 200
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    assert first["x-ratelimit-reset-requests"] == "43s"  # 42.75 s left, rounded up
    assert first["x-ratelimit-limit-tokens"] == "1000"
    # Reserved 11 tokens, settled to the 8 used: what the admission saw was 11.
    assert first["x-ratelimit-remaining-tokens"] == "989"
    assert v1(client, api_key, BODY).status_code == 200
    refused = v1(client, api_key, BODY)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    assert refused["Retry-After"] == str(math.ceil(42.75))
    assert refused["x-ratelimit-remaining-requests"] == "0"
    # A malformed request of a limited tenant carries them too.
    bad = v1(client, api_key, {"messages": []})
    assert bad.status_code == 400
    assert bad["x-ratelimit-remaining-requests"] == "0"
    # A stream is refused before its first byte, with the same answer.
    stream = v1(client, api_key, {**BODY, "stream": True})
    assert stream.status_code == 429
    assert not stream.streaming
    assert stream["Retry-After"] == "43"


def test_v1_budget_refusal(client, api_key, tenant, priced_config, fake_clock):
    set_limits(tenant, usd_per_month=Decimal("0.15"))
    assert v1(client, api_key, BODY).status_code == 200  # $0.08 spent; the next reserves $0.11
    refused = v1(client, api_key, BODY)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused["Retry-After"]) > 86400  # mid-month: the month's end is days away
    assert "x-ratelimit-limit-requests" not in refused  # no request limit set


def test_unlimited_tenant_gets_no_rate_limit_headers(client, api_key, priced_config):
    response = v1(client, api_key, BODY)
    assert response.status_code == 200
    assert "x-ratelimit-limit-requests" not in response


def test_rest_connection_test_refused_is_a_429_in_the_api_error_shape(
    tenant_client, tenant, priced_config, fake_clock
):
    set_limits(tenant, requests_per_minute=1)
    url = reverse("llm-test")
    assert tenant_client.post(url, {}, format="json").json()["success"] is True
    refused = tenant_client.post(url, {}, format="json")
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limited"
    assert body["details"]["retry_after"] == 43
    assert refused["Retry-After"] == "43"
    priced_config.refresh_from_db()
    assert priced_config.last_test_success is True  # the refusal is not a test outcome


def test_status_endpoint_shows_limits_and_what_is_left_read_only(
    tenant_client, tenant, priced_config, fake_clock
):
    url = reverse("llm-provider-status")
    assert tenant_client.get(url).json()["limits"] is None
    set_limits(tenant, requests_per_minute=5, usd_per_day=Decimal("1"))
    tenant_client.post(reverse("llm-test"), {}, format="json")
    limits = tenant_client.get(url).json()["limits"]
    assert limits["requests_per_minute"] == {
        "limit": 5,
        "used": 1,
        "remaining": 4,
        "resets_in": 43,
    }
    assert limits["usd_per_day"]["limit"] == "1.00000000"
    assert Decimal(limits["usd_per_day"]["used"]) == Decimal("0.08")  # 6 + 2 tokens at a cent
    assert limits["tokens_per_minute"] is None
    for method in ("put", "patch", "post", "delete"):
        assert (
            getattr(tenant_client, method)(url, {"limits": None}, format="json").status_code == 405
        )
    assert TenantLLMLimits.objects.get(tenant=tenant).requests_per_minute == 5


def test_set_llm_limits_command(tenant):
    out = StringIO()
    call_command("set_llm_limits", tenant.pk, "--rpm", "30", "--usd-per-day", "2.5", stdout=out)
    row = TenantLLMLimits.objects.get(tenant=tenant)
    assert (row.requests_per_minute, row.usd_per_day, row.tokens_per_minute) == (
        30,
        Decimal("2.5"),
        None,
    )
    call_command("set_llm_limits", tenant.pk, "--tpm", "1000", "--rpm", "none", stdout=out)
    row.refresh_from_db()
    assert (row.requests_per_minute, row.tokens_per_minute, row.usd_per_day) == (
        None,
        1000,
        Decimal("2.5"),
    )
    call_command("set_llm_limits", tenant.pk, "--clear", stdout=out)
    assert not TenantLLMLimits.objects.filter(tenant=tenant).exists()
    with pytest.raises(CommandError, match="No tenant"):
        call_command("set_llm_limits", "nobody", "--rpm", "1")
    with pytest.raises(CommandError):
        call_command("set_llm_limits", tenant.pk, "--usd-per-day", "-1")


def test_admin_tenant_page_edits_limits_inline(admin_client, tenant):
    set_limits(tenant, max_concurrent=3)
    page = admin_client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "LLM limits" in html
    assert 'name="llm_limits-0-max_concurrent"' in html
    assert 'value="3"' in html


@pytest.mark.django_db(transaction=True)
def test_a_build_refused_by_the_limits_fails_with_the_error_and_keeps_its_steps(
    tenant_client, tenant, priced_config, keep_signal_handlers
):
    set_limits(tenant, requests_per_minute=1)
    response = tenant_client.post("/api/build/start", {"prompt": "A shop."}, format="json")
    run_worker_until_idle()
    build = Build.objects.get(pk=response.json()["id"])
    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "rate_limited"
    assert build.error["status_code"] == 429
    assert list(build.steps.values_list("name", "status")) == [
        ("blueprint", StepStatus.SUCCEEDED),
        ("review", StepStatus.FAILED),
    ]
    assert build.steps.get(name="review").usage_log.error_type == "rate_limited"
    assert UsageLog.objects.filter(tenant=tenant).count() == 2


def test_admin_config_page_edits_fallback_order_and_shows_the_breaker(admin_client, priced_config):
    url = reverse("admin:llm_providers_providerconfig_change", args=[priced_config.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="fallback_order"' in html
    assert "circuit breaker" in html.lower()
    response = admin_client.post(
        url,
        {
            "default_model": priced_config.default_model,
            "base_url": priced_config.base_url,
            "active": "on",
            "fallback_order": "2",
            "metadata": json.dumps(priced_config.metadata),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    priced_config.refresh_from_db()
    assert priced_config.fallback_order == 2
    # The breaker's state is on the config's page (the list keeps to a 1366-px screen).
    page = admin_client.get(
        reverse("admin:llm_providers_providerconfig_change", args=[priced_config.pk])
    )
    assert "closed" in page.content.decode()


def test_healthz_counts_open_breakers(client, priced_config, fake_clock, settings):
    from llm_providers.limits import breaker

    settings.LLM_BREAKER_FAILURES = 1
    assert client.get("/healthz").json()["checks"]["breakers"] == {"open": 0, "half_open": 0}
    breaker.record(str(priced_config.pk), "server_error")
    assert client.get("/healthz").json()["checks"]["breakers"] == {"open": 1, "half_open": 0}
    fake_clock.now += settings.LLM_BREAKER_COOLDOWN + 1
    assert client.get("/healthz").json()["checks"]["breakers"] == {"open": 0, "half_open": 1}
    breaker.record(str(priced_config.pk), None)
    assert client.get("/healthz").json()["checks"]["breakers"] == {"open": 0, "half_open": 0}
