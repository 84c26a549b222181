"""The admin as operators use it (issue 12.6): a tenant's page, the dashboard, checks apart."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from build_loop.models import BuildStatus
from llm_providers.models import ProviderConfig, UsageLog
from tests.build_loop.factories import BuildFactory
from tests.factories import (
    ProviderConfigFactory,
    TenantAPIKeyFactory,
    TenantFactory,
    UsageLogFactory,
)
from tests.support.wire import base_url

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:llm_providers_providerconfig_changelist")
DASHBOARD = reverse("admin:llm_providers_usagelog_dashboard")
COMPLETION_REPLY = {
    "id": "c1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def links_of(page: str, panel: str) -> dict[str, str]:
    section = re.search(
        rf'<section class="tenant-panel" id="panel-{panel}">(.*?)</section>', page, re.S
    )
    assert section, f"no {panel} panel"
    return {
        text: href.replace("&amp;", "&")
        for href, text in re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', section.group(1))
    }


# -- the tenant's page -----------------------------------------------------------------------
def test_a_tenants_page_shows_its_configs_health_keys_usage_and_builds(admin_client):
    acme = TenantFactory(id="acme")
    other = TenantFactory(id="other")
    good = ProviderConfigFactory(
        tenant=acme,
        provider="openai",
        default_model="gpt-4o-mini",
        is_active=True,
        last_connection_test=ProviderConfig.check_outcome(
            at=timezone.now(), success=False, latency_ms=40, error="authentication: bad key"
        ),
        last_validation=ProviderConfig.check_outcome(
            at=timezone.now(), success=True, latency_ms=12
        ),
    )
    ProviderConfigFactory(tenant=other, provider="groq", default_model="other-tenants-model")
    TenantAPIKeyFactory(tenant=acme)
    UsageLogFactory(tenant=acme, provider="openai", tokens_used=42, cost_usd=Decimal("0.5"))
    UsageLogFactory(tenant=other, provider="groq", tokens_used=1000)
    running = BuildFactory(tenant=acme, status=BuildStatus.RUNNING)
    BuildFactory(tenant=other)

    page = html(admin_client.get(reverse("admin:tenants_tenant_change", args=["acme"])))

    configs = re.search(r'id="panel-provider-configs">(.*?)</section>', page, re.S).group(1)
    assert reverse("admin:llm_providers_providerconfig_change", args=[good.pk]) in configs
    assert "✘ authentication: bad key" in configs  # the failed test…
    assert "✔ ok · 12 ms" in configs  # …and the validation that passed, side by side
    assert "other-tenants-model" not in page
    usage = re.search(r'id="panel-usage-last-30-days">(.*?)</section>', page, re.S).group(1)
    assert "<td>42</td>" in usage and "0.5000" in usage
    builds = re.search(r'id="panel-builds">(.*?)</section>', page, re.S).group(1)
    assert "1 running" in builds and str(running.pk)[:8] in builds
    assert "1 usable of 1" in page

    # Every link leads to a list filtered to this tenant.
    for panel, text, must, must_not in [
        ("provider-configs", "All configs", "gpt-4o-mini", "other-tenants-model"),
        ("usage-last-30-days", "Usage dashboard", "tenant <strong>acme</strong>", None),
        ("builds", "All builds", str(running.pk), None),
        ("api-keys", "All API keys of this tenant", "acme", None),
    ]:
        target = html(admin_client.get(links_of(page, panel)[text]))
        assert must in target, (panel, text)
        if must_not:
            assert must_not not in target
    usage_log = html(admin_client.get(links_of(page, "usage-last-30-days")["Usage log"]))
    assert '<td class="field-tokens">42</td>' in usage_log
    assert ">1000<" not in usage_log


# -- test connection and validation, kept apart -------------------------------------------------
def test_validate_after_a_failed_test_keeps_the_failed_test_visible(admin_client, httpserver):
    config = ProviderConfigFactory(
        provider="local", default_model="m", base_url=base_url(httpserver), api_key=""
    )
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "no such model"}}, status=404
    )
    httpserver.expect_ordered_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "m"}]}
    )

    for action in ("test_connection", "validate_configs"):
        admin_client.post(
            CHANGELIST, {"action": action, "_selected_action": [str(config.pk)]}, follow=True
        )

    config.refresh_from_db()
    assert config.last_connection_test["success"] is False
    assert config.last_validation["success"] is True
    # SPEC's fields: the latest check of either kind (the validation).
    assert config.last_test_success is True and config.last_error == ""
    page = html(admin_client.get(CHANGELIST))
    health = dict(re.findall(r'<td class="field-(\w+)">(.*?)</td>', page, re.S))["health"]
    test_line = re.search(r'<div class="health-test">(.*?)</div>', health, re.S).group(1)
    validation_line = re.search(r'<div class="health-validation">(.*?)</div>', health, re.S)
    assert "✘ Local server 404: no such model" in test_line
    assert "✔ ok" in validation_line.group(1)


# -- the dashboard -------------------------------------------------------------------------------
def log_on(day, **kwargs):
    log = UsageLogFactory(**kwargs)
    moment = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    UsageLog.objects.filter(pk=log.pk).update(created_at=moment)
    return log


@pytest.fixture
def traffic(db):
    today = timezone.localdate()
    acme, globex = TenantFactory(id="acme"), TenantFactory(id="globex")
    for latency in range(1, 101):  # 1..100 ms: percentiles are exact
        log_on(today, tenant=acme, provider="openai", model="gpt-4o", endpoint="chat",
               latency_ms=latency, cost_usd=Decimal("0.01"))  # fmt: skip
    log_on(today, tenant=globex, provider="groq", model="llama", endpoint="completion",
           latency_ms=5000, success=False, error_type="rate_limit", cost_usd=None)  # fmt: skip
    log_on(today, tenant=globex, provider="groq", model="llama", endpoint="completion",
           latency_ms=7000, success=False, error_type="timeout", cost_usd=None)  # fmt: skip
    log_on(today, tenant=globex, provider="groq", model="llama", endpoint="chat",
           latency_ms=10, cost_usd=Decimal("2"))  # fmt: skip
    return today


def table(page, table_id) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", r, re.S)
        ]
        for r in rows
    ]


def test_dashboard_filters_are_choices_not_free_text(admin_client, traffic):
    page = html(admin_client.get(DASHBOARD))
    for name in ("provider", "model", "endpoint", "outcome"):
        assert re.search(rf'<select name="{name}"', page), name
    models = re.search(r'<select name="model".*?</select>', page, re.S).group(0)
    assert '<option value="gpt-4o">' in models and '<option value="llama">' in models
    outcomes = re.search(r'<select name="outcome".*?</select>', page, re.S).group(0)
    assert '<option value="error:rate_limit">' in outcomes


def test_dashboard_shows_percentiles_errors_by_type_and_top_tenants(admin_client, traffic):
    page = html(admin_client.get(DASHBOARD, {"provider": "openai"}))
    assert table(page, "latency-percentiles") == [
        ["p50", "p90", "p95", "p99"],
        ["50 ms", "90 ms", "95 ms", "99 ms"],
    ]

    page = html(admin_client.get(DASHBOARD))
    assert table(page, "errors-by-type")[1:] == [["rate_limit", "1"], ["timeout", "1"]]
    assert [row[:3] for row in table(page, "top-tenants")[1:]] == [
        ["globex", "$2.0000", "3"],
        ["acme", "$1.0000", "100"],
    ]


@pytest.mark.parametrize(
    "params, requests",
    [
        ({"provider": "groq"}, "3"),
        ({"model": "gpt-4o"}, "100"),
        ({"endpoint": "completion"}, "2"),
        ({"outcome": "failure"}, "2"),
        ({"outcome": "success"}, "101"),
        ({"outcome": "error:timeout"}, "1"),
        ({"provider": "groq", "outcome": "success", "endpoint": "chat"}, "1"),
    ],
)
def test_dashboard_filters_narrow_every_number(admin_client, traffic, params, requests):
    page = html(admin_client.get(DASHBOARD, params))
    assert re.search(rf"Requests per day <small>\(total {requests}\)</small>", page), params


def test_dashboard_refuses_an_unknown_choice_and_shows_the_defaults(admin_client, traffic):
    page = html(admin_client.get(DASHBOARD, {"provider": "nonsense"}))
    assert "Select a valid choice" in page
    assert re.search(r"Requests per day <small>\(total 103\)</small>", page)
