import datetime as dt
import re
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from llm_providers.configs.testing import TEST_MAX_TOKENS
from llm_providers.models import ProviderConfig, UsageLog
from llm_providers.usage.dashboard import usage_by_day_and_provider
from tests.factories import ProviderConfigFactory, TenantFactory, UsageLogFactory
from tests.llm_providers.test_encryption import raw_key_column
from tests.support.wire import base_url

FAKE_KEY = "sk-test-fake-key-0004"
NEW_KEY = "sk-test-fake-key-9876"
MODELS_REPLY = {"object": "list", "data": [{"id": "m"}]}
COMPLETION_REPLY = {
    "id": "c1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}

CHANGELIST = reverse("admin:llm_providers_providerconfig_changelist")
ADD = reverse("admin:llm_providers_providerconfig_add")
DASHBOARD = reverse("admin:llm_providers_usagelog_dashboard")
USAGE_CHANGELIST = reverse("admin:llm_providers_usagelog_changelist")


def change_url(config):
    return reverse("admin:llm_providers_providerconfig_change", args=[config.pk])


def html(response):
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def undecryptable_config(**kwargs):
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        config = ProviderConfigFactory(api_key=FAKE_KEY, **kwargs)
    return ProviderConfig.objects.get(pk=config.pk)


def form_data(config, **overrides):
    data = {
        "default_model": config.default_model,
        "base_url": config.base_url,
        "metadata": "{}",
        "api_key": "",
        "active": "on" if config.is_active else "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# -- listing and display ---------------------------------------------------------------


def test_changelist_shows_tenant_provider_model_flag_and_masked_key(admin_client):
    config = ProviderConfigFactory(api_key=FAKE_KEY, default_model="gpt-4o-mini")

    page = html(admin_client.get(CHANGELIST))

    assert config.tenant_id in page
    assert "gpt-4o-mini" in page
    assert "****0004" in page
    assert "never tested" in page
    assert FAKE_KEY not in page
    assert raw_key_column(config.pk) not in page


def test_latest_outcome_is_listed(admin_client):
    ProviderConfigFactory(
        last_test_success=False,
        last_error="authentication: bad key",
        test_latency_ms=321,
        last_tested=timezone.now(),
    )

    page = html(admin_client.get(CHANGELIST))

    assert "authentication: bad key" in page
    assert "321" in page


def test_change_page_never_shows_the_key_or_its_ciphertext(admin_client):
    config = ProviderConfigFactory(api_key=FAKE_KEY)

    page = html(admin_client.get(change_url(config)))

    assert "****0004" in page
    assert FAKE_KEY not in page
    assert raw_key_column(config.pk) not in page
    assert 'type="password" name="api_key"' in page
    assert 'name="api_key" value=' not in page


def test_undecryptable_key_is_flagged_in_the_list_and_on_the_page(admin_client):
    config = undecryptable_config()

    listing = html(admin_client.get(CHANGELIST))
    page = html(admin_client.get(change_url(config)))

    assert "undecryptable" in listing and "undecryptable" in page
    for text in (listing, page):
        assert raw_key_column(config.pk) not in text
        assert "gAAAA" not in text


def test_key_status_filter_finds_undecryptable_keys(admin_client):
    broken = undecryptable_config(default_model="broken-model")
    ProviderConfigFactory(default_model="healthy-model")

    page = html(admin_client.get(CHANGELIST, {"key_status": "undecryptable"}))

    assert "broken-model" in page
    assert "healthy-model" not in page
    assert broken.tenant_id in page


# -- the form: write-only key, saving through the service -------------------------------


def test_adding_a_config_saves_it_through_the_service(admin_client, upstream):
    tenant = TenantFactory()
    old = ProviderConfigFactory(tenant=tenant, is_active=True)

    response = admin_client.post(
        ADD,
        {
            "tenant": tenant.pk,
            "provider": "local",
            "default_model": "m",
            "base_url": base_url(upstream) + "/",
            "api_key": FAKE_KEY,
            "active": "on",
            "metadata": "{}",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    config = ProviderConfig.objects.for_tenant(tenant).get(provider="local")
    assert config.is_active
    assert config.api_key_encrypted == FAKE_KEY
    assert config.api_key_last4 == "0004"
    assert config.base_url == base_url(upstream)  # normalised by the service
    old.refresh_from_db()
    assert old.is_active is False


def test_new_configs_are_active_unless_unticked(admin_client):
    page = html(admin_client.get(ADD))

    assert re.search(r'<input type="checkbox" name="active"[^>]* checked', page)


def test_blank_key_field_keeps_the_current_key(admin_client):
    config = ProviderConfigFactory(api_key=FAKE_KEY)

    response = admin_client.post(change_url(config), form_data(config, default_model="gpt-4o"))

    assert response.status_code == 302
    config.refresh_from_db()
    assert config.default_model == "gpt-4o"
    assert config.api_key_encrypted == FAKE_KEY


def test_a_new_key_replaces_the_stored_one(admin_client):
    config = ProviderConfigFactory(api_key=FAKE_KEY)

    response = admin_client.post(change_url(config), form_data(config, api_key=NEW_KEY))

    assert response.status_code == 302
    config.refresh_from_db()
    assert config.api_key_encrypted == NEW_KEY
    assert config.api_key_last4 == "9876"


def test_blank_key_keeps_even_an_undecryptable_key_untouched(admin_client):
    config = undecryptable_config()
    ciphertext = raw_key_column(config.pk)

    response = admin_client.post(change_url(config), form_data(config, default_model="x"))

    assert response.status_code == 302
    assert raw_key_column(config.pk) == ciphertext


def test_key_can_be_removed_for_a_local_server(admin_client):
    config = ProviderConfigFactory(
        provider="local", base_url="http://127.0.0.1:8080/v1", api_key=FAKE_KEY
    )

    response = admin_client.post(change_url(config), form_data(config, clear_api_key="on"))

    assert response.status_code == 302
    config.refresh_from_db()
    assert config.key_status == "missing"
    assert config.api_key_last4 == ""


def test_removing_the_key_of_a_keyed_provider_is_a_form_error(admin_client):
    config = ProviderConfigFactory(provider="openai", api_key=FAKE_KEY)

    response = admin_client.post(change_url(config), form_data(config, clear_api_key="on"))

    page = html(response)
    assert "An API key is required for openai" in page
    config.refresh_from_db()
    assert config.api_key_encrypted == FAKE_KEY


def test_refused_base_url_is_a_form_error_and_nothing_is_created(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        ADD,
        {
            "tenant": tenant.pk,
            "provider": "local",
            "default_model": "m",
            "base_url": "http://169.254.169.254/v1",
            "api_key": FAKE_KEY,
            "active": "on",
            "metadata": "{}",
        },
    )

    page = html(response)
    assert "link-local or metadata" in page
    assert FAKE_KEY not in page  # the write-only field is not echoed back
    assert not ProviderConfig.objects.for_tenant(tenant).exists()


def test_local_provider_without_base_url_is_a_form_error(admin_client):
    tenant = TenantFactory()

    response = admin_client.post(
        ADD,
        {"tenant": tenant.pk, "provider": "local", "default_model": "m", "metadata": "{}"},
    )

    assert "A base URL is required for the local provider" in html(response)
    assert not ProviderConfig.objects.exists()


def test_unticking_active_deactivates_and_ticking_activates_atomically(admin_client):
    tenant = TenantFactory()
    first = ProviderConfigFactory(tenant=tenant, is_active=True)
    second = ProviderConfigFactory(tenant=tenant, is_active=False)

    admin_client.post(change_url(second), form_data(second, active="on"))

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_active, second.is_active) == (False, True)

    admin_client.post(change_url(second), form_data(second, active=""))

    second.refresh_from_db()
    assert second.is_active is False


# -- actions ---------------------------------------------------------------------------


def run_action(client, action, *configs):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(c.pk) for c in configs]},
        follow=True,
    )


def test_test_connection_makes_a_real_completion_and_reports_success(admin_client, upstream):
    upstream.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        COMPLETION_REPLY
    )
    config = ProviderConfigFactory(
        provider="local", base_url=base_url(upstream), default_model="m", api_key=FAKE_KEY
    )

    page = html(run_action(admin_client, "test_connection", config))

    assert f"Test of {config}: OK in" in page
    request, _ = upstream.log[0]
    # The API's test (B7): its token limit, not a separate 1-token ping.
    assert request.json["max_tokens"] == TEST_MAX_TOKENS
    assert request.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    usage = UsageLog.objects.get()
    assert (usage.endpoint, usage.provider_config_id, usage.tokens_used) == ("test", config.pk, 6)
    config.refresh_from_db()
    assert config.last_test_success is True
    assert config.last_tested is not None


def test_test_connection_reports_a_refused_key_on_the_page(admin_client, upstream):
    upstream.expect_request("/v1/chat/completions").respond_with_json({"error": {}}, status=401)
    config = ProviderConfigFactory(
        provider="local", base_url=base_url(upstream), default_model="m", api_key=FAKE_KEY
    )

    page = html(run_action(admin_client, "test_connection", config))

    assert f"Test of {config}: unusable" in page
    assert "authentication" in page
    assert FAKE_KEY not in page
    config.refresh_from_db()
    assert config.last_test_success is False


def test_test_connection_makes_one_attempt_like_the_api_test(admin_client, upstream, settings):
    # B7: the admin action ran a validation ping with LLM_MAX_RETRIES retries.
    settings.LLM_MAX_RETRIES = 2
    upstream.expect_request("/v1/chat/completions").respond_with_json({"error": {}}, status=503)
    config = ProviderConfigFactory(
        provider="local", base_url=base_url(upstream), default_model="m", api_key=FAKE_KEY
    )

    page = html(run_action(admin_client, "test_connection", config))

    assert f"Test of {config}: unreachable" in page
    assert len(upstream.log) == 1
    usage = UsageLog.objects.get()
    assert (usage.endpoint, usage.metadata["attempts"]) == ("test", 1)


def test_test_connection_never_sends_an_undecryptable_key(admin_client, upstream):
    config = undecryptable_config(provider="local", base_url=base_url(upstream))

    page = html(run_action(admin_client, "test_connection", config))

    assert "cannot be decrypted" in page
    assert upstream.log == []


def test_validate_action_checks_the_selected_configs(admin_client, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    configs = [
        ProviderConfigFactory(provider="local", base_url=base_url(upstream), default_model="m")
        for _ in range(2)
    ]

    page = html(run_action(admin_client, "validate_configs", *configs))

    for config in configs:
        assert f"Validation of {config}: OK in" in page
        config.refresh_from_db()
        assert config.last_test_success is True
    assert [request.path for request, _ in upstream.log] == ["/v1/models"] * 2


def test_validate_action_follows_the_configured_mode(admin_client, upstream, settings):
    settings.LLM_VALIDATION_MODE = "ping"
    upstream.expect_request("/v1/chat/completions").respond_with_json(COMPLETION_REPLY)
    config = ProviderConfigFactory(
        provider="local", base_url=base_url(upstream), default_model="m", api_key=FAKE_KEY
    )

    page = html(run_action(admin_client, "validate_configs", config))

    assert f"Validation of {config}: OK in" in page
    assert UsageLog.objects.get().endpoint == "validation"


def test_actions_refuse_too_many_configs_at_once(admin_client, upstream, monkeypatch):
    monkeypatch.setattr("llm_providers.admin.MAX_CONFIGS_PER_ACTION", 1)
    configs = [
        ProviderConfigFactory(provider="local", base_url=base_url(upstream), default_model="m")
        for _ in range(2)
    ]

    page = html(run_action(admin_client, "test_connection", *configs))

    assert "Select at most 1 configs" in page
    assert upstream.log == []


# -- usage logs ------------------------------------------------------------------------


def test_usage_logs_are_read_only(admin_client):
    log = UsageLogFactory()
    change = reverse("admin:llm_providers_usagelog_change", args=[log.pk])
    delete = reverse("admin:llm_providers_usagelog_delete", args=[log.pk])

    assert admin_client.get(reverse("admin:llm_providers_usagelog_add")).status_code == 403
    assert admin_client.post(change, {"model": "changed"}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(change).status_code == 200  # viewing is fine
    log.refresh_from_db()
    assert log.model == "gpt-4o-mini"


def test_usage_log_list_links_the_dashboard_and_filters(admin_client):
    UsageLogFactory(provider="groq", endpoint="test", success=False)

    page = html(admin_client.get(USAGE_CHANGELIST, {"provider": "groq", "success__exact": "0"}))

    assert DASHBOARD in page
    assert "groq" in page


def test_usage_log_list_does_not_query_per_row(admin_client):
    UsageLogFactory.create_batch(2)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(USAGE_CHANGELIST)
    UsageLogFactory.create_batch(8)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(USAGE_CHANGELIST)

    assert len(many.captured_queries) == len(few.captured_queries)


# -- dashboard -------------------------------------------------------------------------


def log_on(day, **kwargs):
    log = UsageLogFactory(**kwargs)
    moment = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    UsageLog.objects.filter(pk=log.pk).update(created_at=moment)
    return log


@pytest.fixture
def usage(db):
    today = timezone.localdate()
    yesterday = today - dt.timedelta(days=1)
    acme = TenantFactory(id="acme")
    globex = TenantFactory(id="globex")
    log_on(yesterday, tenant=acme, provider="openai", tokens_used=100, cost_usd=Decimal("0.01"))
    log_on(yesterday, tenant=acme, provider="openai", tokens_used=50, success=False)
    log_on(today, tenant=acme, provider="anthropic", tokens_used=30, cost_usd=Decimal("0.02"))
    log_on(today, tenant=globex, provider="groq", tokens_used=7)
    log_on(today - dt.timedelta(days=90), tenant=acme, provider="openai", tokens_used=999)
    return {"today": today, "yesterday": yesterday}


def test_usage_is_aggregated_per_day_and_provider_in_one_query(usage):
    with CaptureQueriesContext(connection) as queries:
        rows = list(usage_by_day_and_provider(start=usage["yesterday"], end=usage["today"]))

    assert len(queries.captured_queries) == 1
    by_key = {(row["day"], row["provider"]): row for row in rows}
    openai = by_key[(usage["yesterday"], "openai")]
    assert (openai["requests"], openai["tokens"], openai["errors"]) == (2, 150, 1)
    assert openai["cost"] == Decimal("0.01")
    assert by_key[(usage["today"], "anthropic")]["cost"] == Decimal("0.02")
    assert len(rows) == 3  # the 90-day-old row is outside the range


def test_dashboard_draws_the_four_charts_split_by_provider(admin_client, usage):
    response = admin_client.get(DASHBOARD)

    page = html(response)
    for key in ("requests", "tokens", "cost", "errors"):
        assert f'id="chart-{key}"' in page
    charts = {chart.key: chart for chart in response.context["dashboard"]["charts"]}
    # requests: yesterday openai; today anthropic and groq stacked.
    assert len(charts["requests"].bars) == 3
    assert len(charts["errors"].bars) == 1
    assert charts["tokens"].total == "187"
    assert charts["cost"].total == "$0.0300"
    assert page.count("<rect") == sum(len(c.bars) for c in charts.values())
    assert [name for name, _ in response.context["dashboard"]["legend"]] == [
        "anthropic",
        "groq",
        "openai",
    ]


def test_dashboard_filters_by_tenant_and_dates(admin_client, usage):
    response = admin_client.get(
        DASHBOARD,
        {"tenant": "acme", "start": usage["today"].isoformat(), "end": usage["today"].isoformat()},
    )

    html(response)
    totals = response.context["dashboard"]["totals"]
    assert [row["provider"] for row in totals] == ["anthropic"]
    assert totals[0]["tokens"] == "30"


def test_dashboard_refuses_a_reversed_range_and_shows_the_default(admin_client, usage):
    response = admin_client.get(DASHBOARD, {"start": "2026-02-10", "end": "2026-01-01"})

    page = html(response)
    assert "must not be after" in page
    assert response.context["dashboard"]["end"] == usage["today"]


def test_dashboard_works_offline(admin_client, usage):
    page = html(admin_client.get(DASHBOARD))

    # Nothing is fetched from another host: no script, style sheet, image or font with an
    # absolute or scheme-relative address. (A bare "cdn" search was flaky: the CSRF token
    # is random text and sometimes holds those three letters.)
    external = re.findall(r"""\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.I)
    assert external == []
    assert "@import" not in page and "url(http" not in page
    assert "<svg" in page


def test_dashboard_needs_a_staff_login(client, usage):
    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# -- no key anywhere -------------------------------------------------------------------


def test_no_admin_page_contains_a_key_or_ciphertext(admin_client, usage):
    config = ProviderConfigFactory(api_key=FAKE_KEY)
    broken = undecryptable_config()
    UsageLogFactory(tenant=config.tenant, provider_config=config)
    secrets = [FAKE_KEY, raw_key_column(config.pk), raw_key_column(broken.pk)]
    pages = [
        CHANGELIST,
        ADD,
        change_url(config),
        change_url(broken),
        reverse("admin:llm_providers_providerconfig_history", args=[config.pk]),
        reverse("admin:llm_providers_providerconfig_delete", args=[config.pk]),
        USAGE_CHANGELIST,
        DASHBOARD,
        reverse("admin:index"),
    ]

    for url in pages:
        page = html(admin_client.get(url))
        for secret in secrets:
            assert secret not in page, url
