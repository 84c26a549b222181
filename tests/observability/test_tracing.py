"""OpenTelemetry spans (SPEC §15): a request, its call, each attempt, each build step.

Spans go to an in-memory exporter; the OTLP wiring is checked against a local receiver.
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from build_loop.models import BuildStatus
from build_loop.services import build_run
from llm_providers.observability import tracing
from llm_providers.services import LLMService
from tests.build_loop.factories import BuildFactory
from tests.build_loop.fakes import BLUEPRINT, passing_review
from tests.support.processes import ROOT, closed_port_url
from tests.support.upstream import chat_reply
from tests.support.wire import openai_reply

from .conftest import CHAT, MODEL, post_chat

pytestmark = pytest.mark.django_db

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


def by_name(exporter):
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_gateway_request_its_call_and_its_attempt_nest_under_the_callers_traceparent(
    client, api_key, upstream_config, httpserver, spans
):
    usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    httpserver.expect_request(CHAT).respond_with_json(
        openai_reply(model="gemma-3-270m-it-q4", usage=usage)
    )
    response = post_chat(client, api_key, HTTP_TRACEPARENT=f"00-{PARENT_TRACE}-{PARENT_SPAN}-01")
    assert response.status_code == 200

    found = by_name(spans)
    server = found["POST v1/chat/completions"]
    call = found[f"chat {MODEL}"]
    attempt = found["POST"]
    # The caller's trace, one level down from its span.
    assert format(server.context.trace_id, "032x") == PARENT_TRACE
    assert format(server.parent.span_id, "016x") == PARENT_SPAN
    assert server.kind == SpanKind.SERVER
    assert server.attributes["http.route"] == "v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["switchyard.request_id"] == response["X-Request-ID"]
    # The call under the request, the attempt under the call.
    assert call.parent.span_id == server.context.span_id
    assert attempt.parent.span_id == call.context.span_id
    assert {call.context.trace_id, attempt.context.trace_id} == {server.context.trace_id}
    assert call.kind == SpanKind.CLIENT
    assert dict(call.attributes) | {} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "local",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": "gemma-3-270m-it-q4",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 4,
        "switchyard.tenant": api_key.tenant_id,
        "switchyard.endpoint": "chat",
        "switchyard.source": "config",
        "switchyard.attempts": 1,
    }
    assert attempt.attributes["http.request.method"] == "POST"
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["server.address"] == "localhost"


def test_without_a_traceparent_the_request_starts_a_trace(
    client, api_key, upstream_config, httpserver, spans
):
    httpserver.expect_request(CHAT).respond_with_json(openai_reply(model=MODEL))
    assert post_chat(client, api_key).status_code == 200
    server = by_name(spans)["POST v1/chat/completions"]
    assert server.parent is None


def test_prompts_are_never_exported_unless_prompt_logging_is_on(
    client, api_key, upstream_config, httpserver, spans, settings
):
    settings.LLM_LOG_PROMPTS = False
    httpserver.expect_request(CHAT).respond_with_json(openai_reply("The answer is Y", model=MODEL))
    assert post_chat(client, api_key).status_code == 200
    exported = json.dumps([json.loads(s.to_json()) for s in spans.get_finished_spans()])
    assert "secret plan" not in exported
    assert "answer is Y" not in exported
    assert "gen_ai.input.messages" not in exported


def test_with_prompt_logging_on_the_call_span_carries_the_messages(
    client, api_key, upstream_config, httpserver, spans, settings
):
    settings.LLM_LOG_PROMPTS = True
    httpserver.expect_request(CHAT).respond_with_json(openai_reply("The answer is Y", model=MODEL))
    assert post_chat(client, api_key).status_code == 200
    call = by_name(spans)[f"chat {MODEL}"]
    assert json.loads(call.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "The secret plan is X"}]}
    ]
    assert json.loads(call.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "The answer is Y"}],
            "finish_reason": "stop",
        }
    ]


def test_each_attempt_is_a_span_and_a_failed_call_says_its_error_type(
    tenant, upstream_config, httpserver, spans, settings
):
    settings.LLM_MAX_RETRIES = 1
    for _ in range(2):
        httpserver.expect_ordered_request(CHAT).respond_with_json(
            {"error": {"message": "busy"}}, status=503
        )
    result = LLMService(tenant.pk).chat([{"role": "user", "content": "hi"}])
    assert not result.success
    finished = spans.get_finished_spans()
    attempts = [s for s in finished if s.name == "POST"]
    (call,) = [s for s in finished if s.name == f"chat {MODEL}"]
    assert len(attempts) == 2
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1]
    assert all(a.parent.span_id == call.context.span_id for a in attempts)
    assert all(a.attributes["http.response.status_code"] == 503 for a in attempts)
    assert call.attributes["error.type"] == "overloaded"
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["switchyard.attempts"] == 2
    assert call.parent is None  # no request around it: a trace of its own


def test_an_attempt_that_cannot_connect_has_no_status_code(
    tenant, local_config_for, spans, settings
):
    settings.LLM_MAX_RETRIES = 0
    local_config_for(closed_port_url(), api_key="k", model=MODEL)
    assert not LLMService(tenant.pk).chat([{"role": "user", "content": "hi"}]).success
    attempt = by_name(spans)["POST"]
    assert "http.response.status_code" not in attempt.attributes
    assert attempt.attributes["error.type"] == "connection"


def test_each_build_step_is_a_span_around_its_call(tenant, upstream_config, httpserver, spans):
    for content in (json.dumps(BLUEPRINT), passing_review()):
        httpserver.expect_ordered_request(CHAT).respond_with_json(chat_reply(content, 10, 5))
    build = BuildFactory(tenant=tenant, max_iterations=1)
    assert build_run(build_id=build.pk).status == BuildStatus.SUCCEEDED

    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name.startswith("build_step ")]
    calls = [s for s in finished if s.name == f"chat {MODEL}"]
    assert [s.name for s in steps] == ["build_step blueprint", "build_step review"]
    assert [s.attributes["switchyard.build.step"] for s in steps] == ["blueprint", "review"]
    assert all(s.attributes["switchyard.build.id"] == str(build.pk) for s in steps)
    assert [c.parent.span_id for c in calls] == [s.context.span_id for s in steps]


def test_with_tracing_off_a_request_and_a_call_path_never_import_opentelemetry():
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "from django.test import Client\n"
        "from llm_providers.observability import tracing\n"
        "import llm_providers.engine.calls, llm_providers.gateway.views\n"
        "assert Client(HTTP_HOST='localhost').get('/healthz').status_code in (200, 503)\n"
        "assert tracing.tracer() is None\n"
        "from types import SimpleNamespace as NS\n"
        "from llm_providers import observability as o\n"
        "call = o.call_started(tenant_id='t', endpoint='chat', provider='local', model='m')\n"
        "o.call_sent(call)\n"
        "assert o.attempt_started(NS(url='http://x', method='POST'), 1, NS(headers=None)) is None\n"
        "o.record_call(call, NS(success=True, provider='local', model='m', usage=None,\n"
        "              cost_usd=None, latency_ms=5, error=None))\n"
        "with o.build_step_span(build_id=1, step='review', iteration=1): pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the exporter, against a local OTLP/HTTP receiver -----------------------------------------
class Receiver:
    """Accepts OTLP/HTTP trace exports (protobuf) on 127.0.0.1 and keeps their span names."""

    def __init__(self):
        self.names: list[str] = []
        self.paths: list[str] = []
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                )

                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.names += [s.name for s in scope_spans.spans]
                receiver.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.got.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_with_an_otlp_endpoint_spans_are_exported_over_http(
    tenant, upstream_config, httpserver, settings, monkeypatch
):
    receiver = Receiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        settings.TRACING_ENABLED = True
        tracing.reset()
        httpserver.expect_request(CHAT).respond_with_json(openai_reply(model=MODEL))
        assert LLMService(tenant.pk).chat([{"role": "user", "content": "hi"}]).success
        assert tracing.flush()
        assert receiver.got.wait(10)
        assert receiver.paths == ["/v1/traces"]
        assert sorted(receiver.names) == ["POST", f"chat {MODEL}"]
    finally:
        tracing.reset()
        receiver.stop()


def test_a_streamed_answers_spans_last_until_the_stream_ends(
    client, api_key, upstream_config, httpserver, spans
):
    from werkzeug import Response

    from tests.llm_providers.test_streaming import OPENAI_STREAM

    httpserver.expect_request(CHAT).respond_with_response(
        Response(OPENAI_STREAM, mimetype="text/event-stream")
    )
    response = post_chat(
        client,
        api_key,
        {"stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert set(by_name(spans)) == {"POST"}  # the attempt is over; the request and call go on
    assert b"[DONE]" in b"".join(response.streaming_content)
    response.close()
    found = by_name(spans)
    server, call = found["POST v1/chat/completions"], found[f"chat {MODEL}"]
    assert call.parent.span_id == server.context.span_id
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert server.end_time >= call.end_time
