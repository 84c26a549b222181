import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from llm_providers.models import UsageLog
from tests.factories import ProviderConfigFactory, TenantFactory
from tests.support.wire import base_url, closed_port_url

FAKE_KEY = "sk-test-fake-key-0003"
MODELS_REPLY = {"object": "list", "data": [{"id": "local-model"}]}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def local_config(url, **kwargs):
    return ProviderConfigFactory(
        provider="local", base_url=url, default_model="local-model", api_key=FAKE_KEY, **kwargs
    )


def run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("validate_llm_providers", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_exits_0_and_prints_a_table_when_all_are_usable(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    config = local_config(base_url(upstream))

    code, out, _ = run("--timeout", "5")

    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["TENANT", "PROVIDER", "MODEL", "STATUS"]
    assert row.split()[:4] == [config.tenant_id, "local", "local-model", "reachable"]
    assert "1 checked" in out and "1 reachable, 0 unreachable, 0 unusable" in out
    assert FAKE_KEY not in out


def test_exits_1_when_any_provider_is_not_usable(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))
    local_config(closed_port_url())

    code, out, message = run("--timeout", "5")

    assert code == 1
    assert "unreachable" in out and "connection" in out
    assert "1 of 2" in message


def test_exits_2_when_there_is_nothing_to_validate(db):
    code, _, message = run()

    assert code == 2
    assert "Nothing to validate" in message


def test_exits_2_for_an_unknown_tenant(db):
    code, _, message = run("--tenant", "nobody")

    assert code == 2
    assert "Unknown tenant" in message


def test_tenant_option_checks_only_that_tenant(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    mine = local_config(base_url(upstream))
    local_config(closed_port_url())

    code, out, _ = run("--tenant", mine.tenant_id, "--timeout", "5")

    assert code == 0
    assert "1 checked" in out


def test_tenant_without_an_active_config_has_nothing_to_validate(db):
    tenant = TenantFactory()

    code, _, message = run("--tenant", tenant.pk)

    assert code == 2
    assert tenant.pk in message


def test_json_output_is_the_report(db, upstream):
    upstream.expect_request("/v1/models").respond_with_json({"error": {}}, status=401)
    local_config(base_url(upstream))

    code, out, _ = run("--json", "--timeout", "5")

    assert code == 1
    data = json.loads(out)
    assert data["summary"] == {"reachable": 0, "unreachable": 0, "unusable": 1, "total": 1}
    assert data["results"][0]["error"]["type"] == "authentication"
    assert data["mode"] == "models"
    assert FAKE_KEY not in out


def test_ping_mode_is_passed_through(db, upstream):
    upstream.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "p"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }
    )
    local_config(base_url(upstream))

    code, out, _ = run("--mode", "ping", "--json", "--timeout", "5")

    assert code == 0
    assert json.loads(out)["mode"] == "ping"
    assert [request.path for request, _ in upstream.log] == ["/v1/chat/completions"]
    assert UsageLog.objects.get().endpoint == "validation"


@pytest.mark.parametrize(
    "args",
    [["--mode", "sometimes"], ["--timeout", "soon"], ["--timeout", "-1"], ["--bogus"]],
)
def test_bad_arguments_exit_2(args):
    # argparse's own errors, as a shell sees them: no database needed to fail.
    completed = subprocess.run(
        [sys.executable, "manage.py", "validate_llm_providers", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "config.settings_test", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )

    assert completed.returncode == 2, completed.stderr
    assert "usage:" in completed.stderr


def test_a_disabled_tenant_does_not_make_it_exit_1(db, upstream):
    # Bug B1: its config was checked, found "unusable" (tenant not active), and exit was 1.
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream))
    local_config(base_url(upstream), tenant=TenantFactory(is_active=False))

    code, out, _ = run("--timeout", "5")

    assert code == 0
    assert "1 checked" in out and "0 unusable" in out
