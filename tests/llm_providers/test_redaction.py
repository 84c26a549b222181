"""Keys never reach logs, exception text or usage rows (SPEC §10)."""

import io
import logging
import logging.config

import pytest
import responses

from llm_providers.errors import ProviderError
from llm_providers.models import UsageLog
from llm_providers.redaction import SecretRedactionFilter, forget_secrets, redact, register_secret
from llm_providers.services import LLMService
from tests.support.wire import ANTHROPIC_KEY, GROQ_KEY, OPENAI_KEY, openai_reply


@pytest.fixture(autouse=True)
def _no_registered_secrets():
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "text",
    [
        f"key is {OPENAI_KEY}",
        f"key is {ANTHROPIC_KEY}",
        f"key is {GROQ_KEY}",
        "Authorization: Bearer abc.def-ghi_123",
        "{'x-api-key': 'plain-secret-value', 'accept': 'json'}",
        "GET https://example.test/v1/models?key=plain-secret-value&x=1",
        "url?api_key=plain-secret-value",
    ],
)
def test_known_key_shapes_are_redacted(text):
    out = redact(text)
    assert "[REDACTED]" in out
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, GROQ_KEY, "plain-secret-value", "abc.def-ghi_123"):
        assert secret not in out


def test_registered_secret_of_any_shape_is_redacted():
    register_secret("custom-local-key-xyz")
    assert redact("using custom-local-key-xyz now") == "using [REDACTED] now"


def test_ordinary_text_is_left_alone():
    text = "the sk- prefix and a task-list are fine; Bearer"
    assert redact(text) == text


def make_record(msg, args=(), exc_info=None):
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_filter_redacts_message_args_and_exception_text():
    try:
        raise RuntimeError(f"failed with {OPENAI_KEY}")
    except RuntimeError:
        import sys

        record = make_record(
            "calling with %s and %r", (ANTHROPIC_KEY, {"key": GROQ_KEY}), sys.exc_info()
        )

    SecretRedactionFilter().filter(record)
    text = logging.Formatter("%(message)s").format(record)

    for key in (OPENAI_KEY, ANTHROPIC_KEY, GROQ_KEY):
        assert key not in text
    assert "RuntimeError" in text  # the traceback is kept, redacted


def test_logging_settings_wire_the_filter_on_the_console_handler(settings):
    console = settings.LOGGING["handlers"]["console"]
    assert settings.LOGGING["root"]["handlers"] == ["console"]
    assert "redact_secrets" in console["filters"]
    stream = io.StringIO()
    # The settings' own filter and console handler definitions, on an isolated logger.
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": settings.LOGGING["formatters"],
            "filters": settings.LOGGING["filters"],
            "handlers": {"console": {**console, "stream": stream}},
            "loggers": {"redaction_wiring_test": {"handlers": ["console"], "propagate": False}},
        }
    )
    logging.getLogger("redaction_wiring_test").error("leaking %s", OPENAI_KEY)

    assert "leaking sk-[REDACTED]" in stream.getvalue()
    assert OPENAI_KEY not in stream.getvalue()


def test_provider_error_messages_never_hold_keys():
    error = ProviderError("authentication", f"Incorrect API key provided: {OPENAI_KEY}")
    assert OPENAI_KEY not in error.message and OPENAI_KEY not in str(error)


@responses.activate
def test_a_key_echoed_by_the_provider_reaches_no_log_row_or_result(openai_config, caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(
        "https://api.openai.com/v1/chat/completions",
        status=401,
        json={"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "code": None}},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert OPENAI_KEY not in caplog.text
    assert OPENAI_KEY not in str(result.as_dict()) and OPENAI_KEY not in repr(result)
    log = UsageLog.objects.values().get()
    assert OPENAI_KEY not in str(log)


@responses.activate
def test_a_key_of_unusual_shape_is_redacted_once_used(local_config_for, caplog):
    odd_key = "0123456789abcdef-unusual"
    local_config_for("http://127.0.0.1:8080/v1", api_key=odd_key)
    responses.post(
        "http://127.0.0.1:8080/v1/chat/completions",
        status=500,
        json={"error": {"message": f"bad key {odd_key}"}},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert odd_key not in result.error.message
    assert odd_key not in caplog.text
    assert odd_key not in UsageLog.objects.get().error_message


@responses.activate
def test_success_path_logs_no_key(openai_config, caplog):
    caplog.set_level(logging.DEBUG)
    responses.post("https://api.openai.com/v1/chat/completions", json=openai_reply())

    LLMService("tenant_123").generate_completion("Hi")

    assert OPENAI_KEY not in caplog.text
    assert OPENAI_KEY not in str(UsageLog.objects.values().get())
