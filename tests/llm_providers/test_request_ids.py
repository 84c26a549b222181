"""X-Request-ID end to end (SPEC §15): accepted or generated, echoed, on usage rows, in logs."""

import json
import logging
import re
import subprocess
import sys

import pytest
from django.conf import settings
from werkzeug import Response

from llm_providers.gateway import cache
from llm_providers.models import UsageLog
from llm_providers.redaction import REDACTED
from tests.factories import ProviderConfigFactory
from tests.support.wire import OPENAI_KEY, openai_reply

from .test_streaming import OPENAI_STREAM

pytestmark = pytest.mark.django_db

GENERATED = re.compile(r"\A[0-9a-f]{32}\Z")
CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(autouse=True)
def _no_retries(settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_DEFAULT_PROVIDER = ""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def upstream_config(tenant, httpserver):
    return ProviderConfigFactory(
        tenant=tenant,
        provider="openai",
        default_model="gpt-4o-mini",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key=OPENAI_KEY,
    )


@pytest.mark.parametrize("path", ["/api/llm/provider/status", "/v1/models", "/healthz", "/admin/"])
def test_a_sane_client_id_is_echoed_on_every_kind_of_answer(client, path):
    response = client.get(path, HTTP_X_REQUEST_ID="client-id_1.2")
    assert response["X-Request-ID"] == "client-id_1.2"


@pytest.mark.parametrize(
    "given",
    ["", "x" * 129, "has space", "semi;colon", "ünicode", "new\nline", "a/b"],
)
def test_an_insane_client_id_is_replaced_by_a_generated_one(client, given):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=given)
    assert GENERATED.match(response["X-Request-ID"])


def test_the_longest_sane_id_is_kept_and_missing_ids_are_generated_per_request(client):
    longest = "A." + "z" * 126
    assert client.get("/healthz", HTTP_X_REQUEST_ID=longest)["X-Request-ID"] == longest
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert GENERATED.match(first) and GENERATED.match(second) and first != second


def test_a_gateway_call_stores_the_request_id_and_keeps_the_providers(
    client, api_key, upstream_config, httpserver
):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        openai_reply(), headers={"x-request-id": "req_upstream_9"}
    )
    response = client.post(
        CHAT,
        BODY,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
        HTTP_X_REQUEST_ID="trace-42",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "trace-42"
    row = UsageLog.objects.get()
    assert row.metadata["request_id"] == "trace-42"
    assert row.metadata["upstream_request_id"] == "req_upstream_9"


def test_a_streamed_call_stores_the_request_id_written_after_the_view(
    client, api_key, upstream_config, httpserver
):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(OPENAI_STREAM, mimetype="text/event-stream")
    )
    response = client.post(
        CHAT,
        {**BODY, "stream": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
        HTTP_X_REQUEST_ID="stream-7",
    )
    assert response["X-Request-ID"] == "stream-7"
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("data: [DONE]\n\n")
    assert UsageLog.objects.get().metadata["request_id"] == "stream-7"


def test_a_rest_connection_test_stores_a_generated_request_id(
    client, api_key, upstream_config, httpserver
):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        openai_reply()
    )
    response = client.post(
        "/api/llm/test",
        {},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
    )
    assert response.status_code == 200 and response.json()["success"] is True
    assert UsageLog.objects.get().metadata["request_id"] == response["X-Request-ID"]


def test_every_log_line_of_a_request_carries_its_id(
    client, api_key, upstream_config, httpserver, console
):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        {"error": {"message": "bad key " + OPENAI_KEY}}, status=401
    )
    response = client.post(
        CHAT,
        BODY,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}",
        HTTP_X_REQUEST_ID="logged-1",
    )
    assert response.status_code == 502
    # (The fake upstream's own access log, werkzeug's, is another server's.)
    lines = [line for line in console.getvalue().splitlines() if " werkzeug " not in line]
    assert any("LLM call failed" in line for line in lines)
    assert any("Bad Gateway" in line for line in lines)  # logged after the middlewares
    assert lines and all("[logged-1]" in line for line in lines)
    assert OPENAI_KEY not in console.getvalue()  # redaction still applies


def test_log_lines_outside_a_request_have_a_dash(console):
    logging.getLogger("llm_providers.test").warning("background work")
    assert console.getvalue().strip().endswith("llm_providers.test [-] background work")


def test_json_format_is_one_object_per_line_with_id_level_logger_message_redacted():
    # A fresh process: LOGGING is configured once, at start-up, from LOG_FORMAT.
    script = (
        "import django, logging; django.setup();"
        "from tenants import context;"
        "ctx = context.ActionContext(request_id='json-1');"
        "cm = context.bound(ctx); cm.__enter__();"
        f"logging.getLogger('llm_providers.x').warning('key is %s', {OPENAI_KEY!r});"
        "cm.__exit__(None, None, None);"
        "logging.getLogger('llm_providers.y').error('outside')"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "LOG_FORMAT": "json",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2
    first, second = entries
    assert first["request_id"] == "json-1"
    assert (first["level"], first["logger"]) == ("WARNING", "llm_providers.x")
    assert first["message"] == f"key is sk-{REDACTED}"
    assert set(first) >= {"time", "level", "logger", "message", "request_id"}
    assert (second["request_id"], second["message"]) == (None, "outside")
    assert OPENAI_KEY not in done.stderr


def test_an_unknown_log_format_is_refused_at_start_up():
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env={"DJANGO_SETTINGS_MODULE": "config.settings_test", "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LOG_FORMAT must be plain or json" in done.stderr
