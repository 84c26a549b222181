"""llm_providers/checks.py: every LLM_* setting checked at start-up, naming the setting."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import checks as django_checks
from django.test import override_settings

from llm_providers import checks
from llm_providers.conf import DEFAULTS
from llm_providers.validation import LLMStartupValidator
from tenants import checks as tenant_checks
from tests.support.processes import process_env

ROOT = Path(__file__).resolve().parents[2]


def ids(messages):
    return [m.id for m in messages]


def test_the_reference_settings_pass_every_check(db):
    # `db`: the model checks ask the database what it supports (JSONField on SQLite).
    assert django_checks.run_checks() == []


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("LLM_REQUEST_TIMEOUT", 0, "LLM_REQUEST_TIMEOUT must be greater than 0"),
        ("LLM_REQUEST_TIMEOUT", -5.0, "LLM_REQUEST_TIMEOUT must be greater than 0"),
        ("LLM_REQUEST_TIMEOUT", "60", "LLM_REQUEST_TIMEOUT must be a number"),
        ("LLM_REQUEST_TIMEOUT", float("nan"), "LLM_REQUEST_TIMEOUT must be a finite number"),
        ("LLM_REQUEST_TIMEOUT", None, "LLM_REQUEST_TIMEOUT must be set"),
        ("LLM_REQUEST_DEADLINE", 0, "LLM_REQUEST_DEADLINE must be greater than 0"),
        ("LLM_VALIDATION_TIMEOUT", 0, "LLM_VALIDATION_TIMEOUT must be greater than 0"),
        ("LLM_MAX_RETRIES", -1, "LLM_MAX_RETRIES must be at least 0"),
        ("LLM_MAX_RETRIES", 1.5, "LLM_MAX_RETRIES must be an integer"),
        ("LLM_MAX_RETRIES", True, "LLM_MAX_RETRIES must be an integer"),
        ("LLM_GATEWAY_CACHE_SECONDS", -1, "LLM_GATEWAY_CACHE_SECONDS must be at least 0"),
        ("LLM_USAGE_RETENTION_DAYS", 0, "LLM_USAGE_RETENTION_DAYS must be at least 1"),
        ("LLM_HEALTHZ_TIMEOUT_SECONDS", 0, "LLM_HEALTHZ_TIMEOUT_SECONDS must be greater than 0"),
        ("LLM_HEALTHZ_INTERVAL_SECONDS", 0, "LLM_HEALTHZ_INTERVAL_SECONDS must be greater than 0"),
    ],
)
def test_a_number_setting_out_of_type_or_range_is_named(name, value, message):
    with override_settings(**{name: value}):
        errors = checks.check_number_settings()
    assert ids(errors) == ["llm_providers.E002"]
    assert errors[0].msg.startswith(message)


@pytest.mark.parametrize(
    "name, value",
    [
        ("LLM_REQUEST_DEADLINE", None),
        ("LLM_REQUEST_DEADLINE", 0.5),
        ("LLM_MAX_RETRIES", 0),
        ("LLM_GATEWAY_CACHE_SECONDS", 0),
        ("LLM_USAGE_RETENTION_DAYS", None),
        ("LLM_USAGE_RETENTION_DAYS", 90),
        ("LLM_HEALTHZ_TIMEOUT_SECONDS", 0.5),
        ("LLM_HEALTHZ_INTERVAL_SECONDS", 0.5),
    ],
)
def test_number_settings_at_their_limits_pass(name, value):
    with override_settings(**{name: value}):
        assert checks.check_number_settings() == []


@pytest.mark.parametrize("name", checks.BOOLEANS)
def test_a_boolean_setting_that_is_not_a_boolean_is_named(name):
    with override_settings(**{name: "false"}):
        errors = checks.check_boolean_settings()
    assert ids(errors) == ["llm_providers.E003"]
    assert name in errors[0].msg


@pytest.mark.parametrize("mode", ["model", "fast", "", None, 1])
def test_an_unknown_validation_mode_is_an_error(mode):
    with override_settings(LLM_VALIDATION_MODE=mode):
        errors = checks.check_validation_mode()
    assert ids(errors) == ["llm_providers.E004"]
    assert "LLM_VALIDATION_MODE must be one of models, ping, off" in errors[0].msg


@pytest.mark.parametrize("mode", ["models", "ping", "off", " PING "])
def test_the_validation_modes_pass(mode):
    with override_settings(LLM_VALIDATION_MODE=mode):
        assert checks.check_validation_mode() == []


def test_an_unknown_default_provider_is_an_error_and_known_ones_pass():
    with override_settings(LLM_DEFAULT_PROVIDER="opneai"):
        errors = checks.check_default_provider()
    assert ids(errors) == ["llm_providers.E005"]
    assert "LLM_DEFAULT_PROVIDER" in errors[0].msg and "'opneai'" in errors[0].msg
    for provider in ("", "openai", "Anthropic", "groq", "local"):
        with override_settings(LLM_DEFAULT_PROVIDER=provider):
            assert checks.check_default_provider() == []


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "GROQ_BASE_URL", "LLM_DEFAULT_MODEL"])
def test_a_string_setting_that_is_not_a_string_is_named(name):
    with override_settings(**{name: None}):
        errors = checks.check_string_settings()
    assert ids(errors) == ["llm_providers.E006"]
    assert errors[0].msg.startswith(f"{name} must be a string")


@pytest.mark.parametrize("rate", ["10", "ten/min", "10/week", "/m", 10])
def test_a_throttle_rate_drf_cannot_parse_is_an_error(rate):
    with override_settings(LLM_TEST_THROTTLE_RATE=rate):
        errors = checks.check_test_throttle_rate()
    assert ids(errors) == ["llm_providers.E007"]
    assert "LLM_TEST_THROTTLE_RATE" in errors[0].msg


def test_throttle_rates_drf_reads_pass():
    for rate in ("10/min", "1/s", "100/hour", "5/day", None):
        with override_settings(LLM_TEST_THROTTLE_RATE=rate):
            assert checks.check_test_throttle_rate() == []


def test_a_field_encryption_key_of_the_wrong_type_is_named_not_ignored():
    from cryptography.fernet import Fernet

    good = Fernet.generate_key()
    with override_settings(FIELD_ENCRYPTION_KEY=[good.decode(), 42]):
        errors = tenant_checks.check_field_encryption_key()
    assert ids(errors) == ["tenants.E003"]
    assert "key 2" in errors[0].msg
    with override_settings(FIELD_ENCRYPTION_KEY=[good]):  # bytes keys work as Fernet keys
        assert tenant_checks.check_field_encryption_key() == []


def test_the_validation_timeout_setting_is_the_validators_default():
    with override_settings(LLM_VALIDATION_TIMEOUT=3.5):
        assert LLMStartupValidator().timeout == 3.5
        assert LLMStartupValidator(timeout=1).timeout == 1


def test_every_package_default_is_the_reference_deployments_default():
    # One value per setting: the package's default (llm_providers/conf.py) is what the
    # reference deployment uses when the environment sets nothing, except where it says
    # why not (config/settings.py: the usage spool beside the deployment's database-scoped
    # cache).
    env = process_env("sqlite:////nonexistent.sqlite3", Path("/tmp"))
    for name in DEFAULTS:
        env.pop(name, None)
    code = (
        "import json, config.settings as s, llm_providers.conf as c;"
        "print(json.dumps({n: getattr(s, n) for n in c.DEFAULTS}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    deployed = json.loads(result.stdout)
    differing = {n for n in DEFAULTS if deployed[n] != DEFAULTS[n]}
    assert differing == {"LLM_USAGE_SPOOL_DIR"}
    assert set(DEFAULTS) <= set(dir(django_settings))


def test_manage_check_refuses_an_unknown_validation_mode(tmp_path):
    # Used to pass `manage.py check` and fail later, in the validation thread.
    env = process_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    env["LLM_VALIDATION_MODE"] = "model"

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "llm_providers.E004" in result.stderr and "LLM_VALIDATION_MODE" in result.stderr


def test_a_provider_setting_a_host_project_never_defined_is_unset_not_an_error(settings):
    # A host project defines only the providers it uses: an absent GEMINI_API_KEY is
    # "unset" (the package check's fresh project found this).
    from llm_providers.checks import check_string_settings

    del settings.GEMINI_API_KEY
    assert check_string_settings() == []
