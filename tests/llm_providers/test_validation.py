import json
import logging
import threading

import pytest
from cryptography.fernet import Fernet
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from werkzeug import Response

from llm_providers.models import ProviderConfig, UsageLog
from llm_providers.services import LLMService
from llm_providers.validation import LLMStartupValidator, run_llm_startup_validation
from llm_providers.validation.health import CACHE_KEY, latest_validation
from llm_providers.validation.report import CheckStatus
from llm_providers.validation.runner import validate_provider_configs
from tests.factories import ProviderConfigFactory, TenantFactory
from tests.support.wire import base_url, closed_port_url

FAKE_KEY = "sk-test-fake-key-0001"
MODELS_REPLY = {"object": "list", "data": [{"id": "local-model", "object": "model"}]}
COMPLETION_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def local_config(url, **kwargs):
    kwargs.setdefault("api_key", FAKE_KEY)
    return ProviderConfigFactory(provider="local", base_url=url, default_model="m", **kwargs)


def undecryptable_config(url):
    # Written under a key that the running settings no longer hold.
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        config = local_config(url)
    return ProviderConfig.objects.get(pk=config.pk)


def test_reachable_provider_is_counted_and_its_outcome_stored(db, upstream):
    upstream.expect_request("/v1/models", method="GET").respond_with_json(MODELS_REPLY)
    config = local_config(base_url(upstream))

    report = run_llm_startup_validation(timeout=5)

    assert report.summary == {"reachable": 1, "unreachable": 0, "unusable": 0, "total": 1}
    assert report.all_usable
    config.refresh_from_db()
    assert config.last_test_success is True
    assert config.last_error == ""
    assert config.last_tested is not None
    assert config.test_latency_ms is not None


def test_models_mode_spends_no_tokens_and_writes_no_usage(db, upstream):
    upstream.expect_request("/v1/models", method="GET").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))

    run_llm_startup_validation(mode="models", timeout=5)

    assert [req.path for req, _ in upstream.log] == ["/v1/models"]
    assert upstream.log[0][0].headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert not UsageLog.objects.exists()


def test_ping_mode_sends_a_one_token_completion_logged_as_validation(db, upstream):
    upstream.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        COMPLETION_REPLY
    )
    config = local_config(base_url(upstream))

    report = run_llm_startup_validation(mode="ping", timeout=5)

    assert report.summary["reachable"] == 1
    request, _ = upstream.log[0]
    assert json.loads(request.data)["max_tokens"] == 1
    usage = UsageLog.objects.get()
    assert (usage.endpoint, usage.provider_config_id, usage.success) == (
        "validation",
        config.pk,
        True,
    )


@pytest.mark.django_db(transaction=True)
def test_ping_mode_checks_several_providers_at_once_and_logs_each(upstream):
    upstream.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        COMPLETION_REPLY
    )
    configs = [local_config(base_url(upstream)) for _ in range(3)]

    report = run_llm_startup_validation(mode="ping", timeout=5)

    assert report.summary["reachable"] == 3
    logged = set(
        UsageLog.objects.filter(endpoint="validation").values_list("provider_config_id", flat=True)
    )
    assert logged == {c.pk for c in configs}


def test_rejected_key_is_unusable_with_one_warning_line_without_the_key(db, upstream, caplog):
    upstream.expect_request("/v1/models").respond_with_json({"error": {}}, status=401)
    config = local_config(base_url(upstream))

    with caplog.at_level(logging.WARNING, logger="llm_providers.validation"):
        report = run_llm_startup_validation(timeout=5)

    assert report.summary["unusable"] == 1
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "llm_providers.validation"
    ]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "provider=local" in line
    assert f"tenant={config.tenant_id}" in line
    assert "authentication" in line
    assert FAKE_KEY not in caplog.text and "0001" not in line
    config.refresh_from_db()
    assert config.last_test_success is False
    assert config.last_error.startswith("authentication")


def test_refused_connection_is_unreachable(db, caplog):
    config = local_config(closed_port_url())

    with caplog.at_level(logging.WARNING, logger="llm_providers.validation"):
        report = run_llm_startup_validation(timeout=5)

    assert report.summary == {"reachable": 0, "unreachable": 1, "unusable": 0, "total": 1}
    assert report.checks[0].error["type"] == "connection"
    assert f"unreachable: provider=local tenant={config.tenant_id}" in caplog.text


def test_slow_provider_times_out_without_holding_up_the_others(db, upstream):
    release = threading.Event()

    def hang(request):
        release.wait(10)
        return Response("{}", content_type="application/json")

    slow = TenantFactory()
    fast = TenantFactory()
    upstream.expect_request("/slow/models").respond_with_handler(hang)
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(upstream.url_for("/slow"), tenant=slow)
    local_config(base_url(upstream), tenant=fast)
    try:
        report = run_llm_startup_validation(timeout=0.3)
    finally:
        release.set()

    by_tenant = {check.tenant_id: check for check in report.checks}
    assert by_tenant[slow.pk].status == CheckStatus.UNREACHABLE
    assert by_tenant[slow.pk].error["type"] == "timeout"
    assert by_tenant[fast.pk].status == CheckStatus.REACHABLE


def test_ping_mode_is_bounded_by_the_check_timeout_too(db, upstream):
    release = threading.Event()

    def hang(request):
        release.wait(10)
        return Response(json.dumps(COMPLETION_REPLY), content_type="application/json")

    upstream.expect_request("/v1/chat/completions").respond_with_handler(hang)
    config = local_config(base_url(upstream), metadata={"timeout": 120})
    try:
        report = run_llm_startup_validation(mode="ping", timeout=0.3)
    finally:
        release.set()

    (check,) = report.checks
    assert (check.status, check.error["type"]) == (CheckStatus.UNREACHABLE, "timeout")
    config.refresh_from_db()
    assert config.metadata == {"timeout": 120}  # the check's bound is not stored


def test_providers_are_checked_concurrently(db, upstream):
    count = 4
    # Every request waits at the barrier until all four are in flight at once: a
    # sequential validator would break it (timeout) and get 500s instead.
    barrier = threading.Barrier(count, timeout=5)
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handler(request):
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            barrier.wait()
            return Response(json.dumps(MODELS_REPLY), content_type="application/json")
        except threading.BrokenBarrierError:
            return Response("{}", status=500)
        finally:
            with lock:
                in_flight["now"] -= 1

    upstream.expect_request("/v1/models").respond_with_handler(handler)
    for _ in range(count):
        local_config(base_url(upstream))

    report = run_llm_startup_validation(timeout=8)

    assert report.summary["reachable"] == count
    assert in_flight["max"] == count


def test_undecryptable_key_is_unusable_and_never_sent(db, upstream, caplog):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    config = undecryptable_config(base_url(upstream))
    assert config.key_status == "undecryptable"

    with caplog.at_level(logging.WARNING, logger="llm_providers.validation"):
        report = run_llm_startup_validation(timeout=5)

    check = report.checks[0]
    assert check.status == CheckStatus.UNUSABLE
    assert check.error["type"] == "configuration"
    assert "decrypted" in check.error["message"]
    assert upstream.log == []
    assert "gAAAA" not in caplog.text
    config.refresh_from_db()
    assert config.last_test_success is False
    assert config.key_status == "undecryptable"  # the ciphertext survives the bulk update


def test_configs_are_read_in_one_query_and_stored_in_one_update(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    for _ in range(3):
        local_config(base_url(upstream))
    validator = LLMStartupValidator(timeout=5)

    with CaptureQueriesContext(connection) as queries:
        targets = validator.targets()
        report = validator.run(targets)
        validator.store(report, targets)

    sql = [q["sql"].upper() for q in queries.captured_queries]
    assert len([s for s in sql if s.startswith("SELECT")]) == 1
    assert len([s for s in sql if s.startswith("UPDATE")]) == 1
    assert ProviderConfig.objects.filter(last_test_success=True).count() == 3


def test_only_active_configs_are_validated(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    tenant = TenantFactory()
    local_config(base_url(upstream), tenant=tenant, is_active=True)
    inactive = local_config(base_url(upstream), tenant=tenant, is_active=False)

    report = run_llm_startup_validation(timeout=5)

    assert report.summary["total"] == 1
    inactive.refresh_from_db()
    assert inactive.last_tested is None


def test_full_run_stores_counts_only_in_the_shared_cache(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))
    local_config(closed_port_url())

    run_llm_startup_validation(timeout=5)

    entry = latest_validation()
    assert entry == cache.get(CACHE_KEY)
    assert entry["reachable"] == 1 and entry["unreachable"] == 1 and entry["total"] == 2
    assert set(entry) == {
        "ran_at",
        "mode",
        "duration_ms",
        "reachable",
        "unreachable",
        "unusable",
        "total",
    }


def test_one_tenants_run_leaves_the_shared_state_alone(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    config = local_config(base_url(upstream))

    report = run_llm_startup_validation(tenant_id=config.tenant_id, timeout=5)

    assert report.summary["reachable"] == 1
    assert latest_validation() is None


def test_other_tenants_configs_are_not_checked_in_a_tenant_run(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    mine = local_config(base_url(upstream))
    other = local_config(base_url(upstream))

    report = run_llm_startup_validation(tenant_id=mine.tenant_id, timeout=5)

    assert [c.tenant_id for c in report.checks] == [mine.tenant_id]
    other.refresh_from_db()
    assert other.last_tested is None


def test_mode_off_checks_nothing_and_says_so(db, upstream):
    local_config(base_url(upstream))

    report = run_llm_startup_validation(mode="off")

    assert report.checks == [] and upstream.log == []
    assert latest_validation()["mode"] == "off"


def test_unknown_mode_is_a_value_error(db):
    with pytest.raises(ValueError, match="mode"):
        run_llm_startup_validation(mode="sometimes")


@override_settings(
    LLM_DEFAULT_PROVIDER="openai", LLM_DEFAULT_MODEL="gpt-4o-mini", OPENAI_API_KEY=""
)
def test_environment_fallback_without_its_key_is_unusable(db):
    TenantFactory()  # relies on the fallback: no config of its own

    report = run_llm_startup_validation(timeout=5)

    (check,) = report.checks
    assert check.source == "environment"
    assert check.status == CheckStatus.UNUSABLE
    assert "OPENAI_API_KEY" in check.error["message"]
    assert not UsageLog.objects.exists()


def test_environment_fallback_is_checked_like_a_tenant_would_use_it(db, upstream, settings):
    settings.LLM_DEFAULT_PROVIDER = "local"
    settings.LLM_DEFAULT_MODEL = "m"
    settings.LLM_DEFAULT_BASE_URL = base_url(upstream)
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    relying = TenantFactory()

    report = run_llm_startup_validation(timeout=5)

    (check,) = report.checks
    assert (check.source, check.status, check.tenant_id) == (
        "environment",
        CheckStatus.REACHABLE,
        relying.pk,
    )
    assert check.config_id is None


def test_a_crashing_check_does_not_stop_the_others(db, upstream, monkeypatch, caplog):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    broken = local_config(base_url(upstream))
    local_config(base_url(upstream))
    real_list_models = LLMService.list_models

    def list_models(self, timeout=None, **kwargs):
        if self.tenant_id == broken.tenant_id:
            raise RuntimeError(f"bug with {FAKE_KEY} in it")
        return real_list_models(self, timeout, **kwargs)

    monkeypatch.setattr(LLMService, "list_models", list_models)

    report = run_llm_startup_validation(timeout=5)

    assert report.summary == {"reachable": 1, "unreachable": 0, "unusable": 1, "total": 2}
    assert FAKE_KEY not in caplog.text


def test_admin_validation_of_chosen_configs_includes_inactive_ones(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    inactive = local_config(base_url(upstream), is_active=False)

    report = validate_provider_configs([inactive], timeout=5)

    assert report.summary["reachable"] == 1
    inactive.refresh_from_db()
    assert inactive.last_test_success is True
    assert latest_validation() is None


def test_report_as_dict_is_json_serialisable(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))

    data = json.loads(json.dumps(run_llm_startup_validation(timeout=5).as_dict()))

    assert data["summary"]["reachable"] == 1
    assert data["results"][0]["status"] == "reachable"
    assert FAKE_KEY not in json.dumps(data)


@override_settings(LLM_DEFAULT_PROVIDER="local", LLM_DEFAULT_MODEL="m")
def test_environment_fallback_is_not_checked_when_no_tenant_relies_on_it(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))

    report = run_llm_startup_validation(timeout=5)

    assert [check.source for check in report.checks] == ["config"]


def test_a_disabled_tenants_config_is_not_checked_or_reported_unusable(db, upstream):
    # Bug B1: its calls are refused ("The tenant is not active"), so it is no provider.
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))
    disabled = local_config(base_url(upstream), tenant=TenantFactory(is_active=False))

    report = run_llm_startup_validation(timeout=5)

    assert report.summary == {"reachable": 1, "unreachable": 0, "unusable": 0, "total": 1}
    assert report.all_usable
    disabled.refresh_from_db()
    assert disabled.last_tested is None


def test_an_unusable_config_is_reported_by_the_rule_calls_use_without_a_request(db, upstream):
    config = ProviderConfigFactory(provider="openai", default_model="gpt-4o-mini", api_key="")

    report = run_llm_startup_validation(timeout=5)

    (check,) = report.checks
    assert check.status == CheckStatus.UNUSABLE
    assert check.error["type"] == "configuration"
    assert check.error["message"] == LLMService(config.tenant_id).describe()["error"]["message"]
    assert upstream.log == []


# -- models mode: the default model must be offered ----------------------------------------
OPENAI_MODELS = {
    "object": "list",
    "data": [{"id": "gpt-4o-mini"}, {"id": "gpt-4o-mini-2024-07-18"}, {"id": "gpt-4o"}],
}


def openai_config(url, model):
    return ProviderConfigFactory(
        provider="openai", base_url=url, api_key=FAKE_KEY, default_model=model
    )


def test_a_default_model_missing_from_the_providers_list_is_not_reachable(db, upstream):
    # The key works, but every call would fail: a typo must not get a green tick.
    upstream.expect_request("/v1/models", method="GET").respond_with_json(OPENAI_MODELS)
    config = openai_config(base_url(upstream), "gpt-4o-mnii")

    report = run_llm_startup_validation(timeout=5)

    assert report.summary == {"reachable": 0, "unreachable": 0, "unusable": 1, "total": 1}
    check = report.checks[0]
    assert check.status == CheckStatus.UNUSABLE
    assert check.error["type"] == "not_found"
    assert "'gpt-4o-mnii'" in check.error["message"] and "default model" in check.error["message"]
    config.refresh_from_db()
    assert config.last_test_success is False
    assert "gpt-4o-mnii" in config.last_error


@pytest.mark.parametrize(
    "provider, model, listed",
    [
        ("openai", "gpt-4o-mini", ["gpt-4o-mini-2024-07-18"]),  # a snapshot of it
        ("openai", "gpt-4o", ["gpt-4o", "gpt-4o-mini"]),
        ("anthropic", "claude-3-7-sonnet-latest", ["claude-3-7-sonnet-20250219"]),
        ("anthropic", "claude-sonnet-4-20250514", ["claude-sonnet-4-20250514"]),
    ],
)
def test_a_listed_default_model_or_a_name_its_snapshots_carry_is_reachable(
    db, upstream, provider, model, listed
):
    upstream.expect_request("/v1/models", method="GET").respond_with_json(
        {"data": [{"id": name} for name in listed]}
    )
    ProviderConfigFactory(
        provider=provider, base_url=base_url(upstream), api_key=FAKE_KEY, default_model=model
    )

    report = run_llm_startup_validation(timeout=5)

    assert report.summary["reachable"] == 1, report.checks[0].error


def test_a_local_server_is_not_held_to_its_model_list(db, upstream):
    # llama-server answers to any model name: its list says what file it loaded.
    upstream.expect_request("/v1/models", method="GET").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))  # default model "m", listed: "local-model"

    assert run_llm_startup_validation(timeout=5).summary["reachable"] == 1


def test_ping_mode_does_not_compare_model_lists(db, upstream):
    upstream.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        COMPLETION_REPLY
    )
    openai_config(base_url(upstream), "gpt-4o-mnii")

    report = run_llm_startup_validation(mode="ping", timeout=5)

    assert report.summary["reachable"] == 1
