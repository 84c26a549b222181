"""An operator's path through the admin, in a real browser (the machine's Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from llm_providers.configs.testing import TEST_MAX_TOKENS
from llm_providers.models import ProviderConfig, UsageLog
from tests.factories import TenantFactory

pytestmark = pytest.mark.browser

FAKE_KEY = "sk-test-fake-key-0005"
COMPLETION_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "local-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "length"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@pytest.fixture
def operator(admin_user, settings):
    # The live server speaks plain HTTP; production's secure-only cookies would not come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return admin_user


def test_operator_adds_a_provider_tests_it_and_sees_the_usage_chart(
    live_server, operator, browser_page, model_server
):
    model_server.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        COMPLETION_REPLY
    )
    tenant = TenantFactory(id="tenant_browser", name="Browser tenant")
    page = browser_page

    # Log in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()

    # Add a provider config pointing at the local model server.
    page.goto(f"{live_server.url}/admin/llm_providers/providerconfig/add/")
    page.fill("#id_tenant", tenant.pk)
    page.select_option("#id_provider", "local")
    page.fill("#id_default_model", "local-model")
    page.fill("#id_base_url", model_server.url_for("/v1"))
    page.fill("#id_api_key", FAKE_KEY)
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    row = page.locator("#result_list tbody tr", has_text=tenant.pk)
    expect(row).to_contain_text("****0005")
    expect(row.locator("td.field-is_active img")).to_have_attribute("alt", "True")
    assert FAKE_KEY not in page.content()

    # Run "Test connection" on it.
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "test_connection")
    page.click("button[name=index]")
    success = page.locator("ul.messagelist li.success")
    expect(success).to_contain_text(
        re.compile(r"Test of tenant_browser/local/local-model: OK in \d+ ms")
    )
    expect(page.locator("#result_list tbody tr", has_text=tenant.pk)).to_contain_text("ok")

    # Open the usage dashboard from the usage log list and see the charts.
    page.goto(f"{live_server.url}/admin/llm_providers/usagelog/")
    page.click("text=Usage dashboard")
    expect(page).to_have_url(re.compile(r"/admin/llm_providers/usagelog/dashboard/"))
    for chart in ("requests", "tokens", "cost", "errors"):
        expect(page.locator(f"#chart-{chart} svg")).to_be_visible()
    # The test call is in the log, so the requests and tokens charts each draw its bar.
    expect(page.locator("#chart-requests svg rect.bar")).to_have_count(1)
    expect(page.locator("#chart-tokens svg rect.bar title")).to_contain_text("local: 6")
    expect(page.locator("#usage-totals")).to_contain_text("local")

    request, _ = model_server.log[0]
    assert request.json["max_tokens"] == TEST_MAX_TOKENS  # the API test's limit (B7)
    assert request.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    config = ProviderConfig.objects.get(tenant=tenant)
    assert config.last_test_success is True and config.is_active
    assert UsageLog.objects.get(provider_config=config).endpoint == "test"
