"""The operators' admin pages (issue 12.6) in the machine's Chromium at 1366 × 768.

Each test keeps full-page screenshots (tests/browser/conftest.py: var/test-artifacts/).
"""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from build_loop.models import Build, BuildStatus, StepStatus
from llm_providers.models import ProviderConfig, UsageLog
from tests.build_loop.factories import BuildFactory, BuildStepFactory
from tests.factories import (
    ProviderConfigFactory,
    TenantAPIKeyFactory,
    TenantFactory,
    UsageLogFactory,
)
from tests.support.upstream import BLUEPRINT

pytestmark = pytest.mark.browser

WIDTH = 1366


@pytest.fixture
def operator(admin_user, settings):
    # The live server speaks plain HTTP; production's secure-only cookies would not come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return admin_user


@pytest.fixture
def admin(live_server, operator, browser_page):
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    page.base = live_server.url
    return page


def fits_the_screen(page) -> None:
    """Nothing wider than the 1366-px window: no horizontal scrolling of the page, nor of
    a list's table inside its own scrolling box (the admin's `.results`)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url} is {width} px wide"
    overflowing = page.evaluate(
        "[...document.querySelectorAll('.results, .tenant-panel, .usage-tables')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => `${e.className}: ${e.scrollWidth} > ${e.clientWidth} (columns: ` +"
        "[...e.querySelectorAll('thead th')].map(th => th.textContent.trim() + ' ' +"
        " th.offsetWidth).join(', ') + ')')"
    )
    assert overflowing == [], f"{page.url}: {overflowing}"


def usage(tenant, *, days_ago=0, **kwargs):
    log = UsageLogFactory(tenant=tenant, **kwargs)
    moment = timezone.now() - dt.timedelta(days=days_ago)
    UsageLog.objects.filter(pk=log.pk).update(created_at=moment)
    return log


@pytest.fixture
def estate(db):
    """Two tenants with configs in every state of health, usage and builds."""
    acme = TenantFactory(id="acme_corporation", name="Acme Corporation")
    globex = TenantFactory(id="globex", name="Globex")
    now = timezone.now()
    failed_test = ProviderConfig.check_outcome(
        at=now, success=False, latency_ms=812, error="authentication: Incorrect API key provided"
    )
    passed = ProviderConfig.check_outcome(at=now, success=True, latency_ms=143)
    ProviderConfigFactory(
        tenant=acme,
        provider="openai",
        default_model="gpt-4o-mini-2024-07-18-with-a-rather-long-name",
        base_url="https://api.openai.example/v1/with/a/long/path/that/goes/on",
        is_active=True,
        last_connection_test=failed_test,
        last_validation=passed,
        last_tested=now,
        last_test_success=True,
        test_latency_ms=143,
    )
    ProviderConfigFactory(
        tenant=acme, provider="anthropic", default_model="claude-sonnet-4-5", is_active=False
    )
    ProviderConfigFactory(
        tenant=globex, provider="groq", default_model="llama-3.3-70b-versatile", is_active=True
    )
    TenantAPIKeyFactory(tenant=acme, name="production")
    for i in range(40):
        usage(acme, days_ago=i % 7, provider="openai", model="gpt-4o-mini", endpoint="chat",
              latency_ms=100 + 10 * i, tokens_used=200, cost_usd=Decimal("0.02"))  # fmt: skip
    for error in ("rate_limit", "rate_limit", "timeout"):
        usage(globex, provider="groq", model="llama-3.3-70b-versatile", endpoint="completion",
              success=False, error_type=error, latency_ms=3000, cost_usd=None)  # fmt: skip
    usage(globex, provider="groq", model="llama-3.3-70b-versatile", endpoint="chat",
          latency_ms=90, cost_usd=Decimal("0.30"))  # fmt: skip
    running = BuildFactory(tenant=acme, status=BuildStatus.RUNNING, max_iterations=2,
                           blueprint=BLUEPRINT, blueprint_text=json.dumps(BLUEPRINT))  # fmt: skip
    BuildStepFactory(build=running, position=1, name="blueprint", status=StepStatus.SUCCEEDED,
                     output=json.dumps(BLUEPRINT), parsed=BLUEPRINT, tokens_used=150)  # fmt: skip
    BuildStepFactory(build=running, position=2, name="review", status=StepStatus.RUNNING)
    BuildFactory(tenant=acme, status=BuildStatus.SUCCEEDED)
    return {"acme": acme, "globex": globex, "running": running}


def test_tenant_page_leads_to_its_configs_usage_and_builds(admin, estate, screenshot):
    page = admin
    page.goto(f"{page.base}/admin/tenants/tenant/acme_corporation/change/")
    panels = page.locator("#tenant-panels")
    expect(panels).to_be_visible()
    configs = page.locator("#panel-provider-configs")
    expect(configs).to_contain_text("✘ authentication: Incorrect API key")
    expect(configs).to_contain_text("✔ ok · 143 ms")
    expect(configs).to_contain_text("never tested")
    expect(page.locator("#panel-usage-last-30-days")).to_contain_text("40")
    expect(page.locator("#panel-builds")).to_contain_text("1 running")
    expect(page.locator("#panel-api-keys")).to_contain_text("1 usable of 1")
    fits_the_screen(page)
    screenshot(page, "tenant-page")

    configs.locator("text=All configs").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).not_to_contain_text("llama-3.3")
    fits_the_screen(page)
    screenshot(page, "configs-of-the-tenant")

    page.go_back()
    page.locator("#panel-builds").locator("text=Running builds").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    fits_the_screen(page)

    page.go_back()
    page.locator("#panel-usage-last-30-days").locator("text=Usage dashboard").click()
    expect(page.locator("#content-main")).to_contain_text("tenant acme_corporation")
    expect(page.locator("#chart-requests")).to_contain_text("total 40")


def test_provider_list_shows_test_and_validation_apart_and_fits(admin, estate, screenshot):
    page = admin
    page.goto(f"{page.base}/admin/llm_providers/providerconfig/")
    row = page.locator("#result_list tbody tr", has_text="acme_corporation").filter(
        has_text="openai"
    )
    health = row.locator("td.field-health")
    expect(health.locator(".health-test")).to_contain_text("test: ✘ authentication")
    expect(health.locator(".health-validation")).to_contain_text("validation: ✔ ok · 143 ms")
    # The full error is one hover away.
    title = health.locator(".health-test span").get_attribute("title")
    assert "Incorrect API key provided" in title
    fits_the_screen(page)
    screenshot(page, "provider-configs")


def test_dashboard_filters_by_choice_and_shows_latency_errors_and_top_tenants(
    admin, estate, screenshot
):
    page = admin
    page.goto(f"{page.base}/admin/llm_providers/usagelog/dashboard/")
    expect(page.locator("#chart-requests")).to_contain_text("total 44")
    expect(page.locator("#errors-by-type")).to_contain_text("rate_limit")
    top = page.locator("#top-tenants tbody tr")
    expect(top.first).to_contain_text("acme_corporation")  # 40 × 0.02 = 0.80 > 0.30
    expect(top.nth(1)).to_contain_text("globex")
    fits_the_screen(page)
    screenshot(page, "dashboard-all")

    page.select_option("select[name=provider]", "groq")
    page.select_option("select[name=outcome]", "failure")
    page.click("input[value=Show]")
    expect(page.locator("#chart-requests")).to_contain_text("total 3")
    expect(page.locator("#latency-percentiles")).to_contain_text("3,000 ms")
    rows = page.locator("#errors-by-type tbody tr")
    expect(rows.first).to_contain_text("rate_limit")
    expect(rows.first).to_contain_text("2")
    fits_the_screen(page)
    screenshot(page, "dashboard-groq-failures")

    # An error type leads to its own rows.
    rows.filter(has_text="timeout").locator("a").click()
    expect(page.locator("#chart-requests")).to_contain_text("total 1")
    expect(page.locator("select[name=outcome]")).to_have_value("error:timeout")


def test_a_running_build_refreshes_and_is_cancelled_with_its_button(admin, estate, screenshot):
    page = admin
    running = estate["running"]
    url = f"{page.base}/admin/build_loop/build/{running.pk}/change/"
    page.goto(url)
    expect(page.locator("#build-refreshing")).to_contain_text("refreshes every 5 s")
    assert page.locator('meta[http-equiv="refresh"]').count() == 1
    # No Delete while it runs.
    expect(page.locator("a.deletelink")).to_have_count(0)
    blueprint = page.locator("#blueprint")
    expect(blueprint).to_have_attribute("open", "")
    expect(blueprint.locator("pre")).to_contain_text('"title": "Bicycle shop"')
    fits_the_screen(page)
    screenshot(page, "running-build")

    # The blueprint folds away.
    blueprint.locator("summary").click()
    expect(blueprint.locator("pre")).not_to_be_visible()

    page.click("#cancel-build")
    expect(page.locator("ul.messagelist")).to_contain_text("The build was cancelled.")
    expect(page.locator("#cancel-build")).to_have_count(0)
    expect(page.locator("#build-refreshing")).to_have_count(0)
    expect(page.locator("a.deletelink")).to_have_count(1)
    assert Build.objects.get(pk=running.pk).status == BuildStatus.CANCELLED
    screenshot(page, "cancelled-build")


def test_the_lists_fit_a_laptop_screen(admin, estate, screenshot):
    page = admin
    for name, path in [
        ("builds", "/admin/build_loop/build/"),
        ("usage-log", "/admin/llm_providers/usagelog/"),
        ("tenants", "/admin/tenants/tenant/"),
        ("api-keys", "/admin/tenants/tenantapikey/"),
    ]:
        page.goto(f"{page.base}{path}")
        expect(page.locator("#result_list")).to_be_visible()
        fits_the_screen(page)
        screenshot(page, name)
    assert re.search(r"/admin/tenants/tenantapikey/$", page.url)
