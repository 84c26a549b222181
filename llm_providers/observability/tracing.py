"""OpenTelemetry tracing, following the GenAI semantic conventions; off unless configured.

Off (no OTLP endpoint configured): `tracer()` answers None after one settings lookup and
OpenTelemetry is never imported, so the hot path pays a function call and an `if`.
On: a TracerProvider of our own (not the process-global one, so tests can swap
exporters) with a batch span processor and the OTLP/HTTP exporter, which reads the
standard `OTEL_EXPORTER_OTLP_*` variables itself. It is set up lazily, in the process that
first traces: after granian's or the task worker's fork, never before it.

Spans:
- `<METHOD> <route>` (SERVER): each HTTP request (middleware.py); a `traceparent` header
  makes it a child of the caller's span.
- `chat <model>` (CLIENT): each LLM call, retries included (a stream: until it ended), with
  `gen_ai.*` attributes. Prompts and answers (`gen_ai.input.messages`,
  `gen_ai.output.messages`) only when LLM_LOG_PROMPTS is on.
- `<METHOD>` (CLIENT): each HTTP attempt to the provider, a child of the call.
- `build_step <name>` (INTERNAL): each build step; its call is its child.
"""

import json
import threading

from django.conf import settings

_lock = threading.Lock()
_provider = None  # the TracerProvider when on
_tracer = None
_decided = False


def tracer():
    """The tracer, or None when tracing is off."""
    if not _decided:
        _configure_from_settings()
    return _tracer


def _configure_from_settings() -> None:
    global _decided
    with _lock:
        if _decided:
            return
        if getattr(settings, "TRACING_ENABLED", False):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _install(OTLPSpanExporter(), batch=True)
        _decided = True


def configure(exporter, *, batch: bool = False) -> None:
    """Trace into `exporter` from now on (tests: an InMemorySpanExporter, batch=False)."""
    global _decided
    with _lock:
        _install(exporter, batch=batch)
        _decided = True


def disable() -> None:
    """Tracing off (and its spans flushed); tests restore the default with this."""
    global _provider, _tracer, _decided
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _provider = _tracer = None
        _decided = True


def reset() -> None:
    """Forget the decision: the next `tracer()` reads the settings again."""
    global _decided
    disable()
    _decided = False


def _install(exporter, *, batch: bool) -> None:
    global _provider, _tracer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _provider is not None:
        _provider.shutdown()
    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, which win.
    provider = TracerProvider(resource=Resource.create({"service.name": "switchyard"}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _provider = provider
    _tracer = provider.get_tracer("switchyard")


def flush(timeout_millis: int = 5000) -> bool:
    return _provider.force_flush(timeout_millis) if _provider is not None else True


# -- the spans --------------------------------------------------------------------------

# SPEC's endpoints to the GenAI operation names: `completion` is sent as a chat.
OPERATIONS = {"chat": "chat", "completion": "chat", "embedding": "embeddings"}


class CallSpan:
    """The span of one LLM call, current while its request is sent (so that the attempts
    are its children), ended with the call's result."""

    __slots__ = ("span", "token", "messages")

    def __init__(self, tracer, *, tenant_id, endpoint, provider, model, source, messages):
        from opentelemetry import context, trace

        operation = OPERATIONS.get(endpoint, endpoint)
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider or "none",
            "gen_ai.request.model": model or "",
            "switchyard.tenant": tenant_id,
            "switchyard.endpoint": endpoint,
        }
        if source:
            attributes["switchyard.source"] = source
        self.span = tracer.start_span(
            f"{operation} {model}".strip(), kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        self.token = context.attach(trace.set_span_in_context(self.span))
        self.messages = messages if settings.LLM_LOG_PROMPTS else None

    def sent(self) -> None:
        """The request went out (and the reply, or a stream's headers, came back)."""
        if self.token is not None:
            from opentelemetry import context

            context.detach(self.token)
            self.token = None

    def finish(self, result, *, reported_model=None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.sent()
        span = self.span
        if reported_model or result.model:
            span.set_attribute("gen_ai.response.model", reported_model or result.model)
        if result.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
        usage = result.usage
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            if usage.cached_prompt_tokens:
                span.set_attribute(
                    "gen_ai.usage.cache_read.input_tokens", usage.cached_prompt_tokens
                )
            if usage.cache_write_tokens:
                span.set_attribute(
                    "gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens
                )
            if usage.reasoning_tokens:
                span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
        if result.attempts:
            span.set_attribute("switchyard.attempts", result.attempts)
        if self.messages is not None:
            span.set_attribute("gen_ai.input.messages", _messages_json(self.messages))
            if result.success:
                output = [{"role": "assistant", "content": result.content}]
                span.set_attribute(
                    "gen_ai.output.messages",
                    _messages_json(output, finish_reason=result.finish_reason),
                )
        if result.error is not None:
            span.set_attribute("error.type", str(result.error.type))
            span.set_status(Status(StatusCode.ERROR, str(result.error.type)))
        span.end()


def _messages_json(messages, finish_reason=None) -> str:
    """Messages in the GenAI conventions' shape: role and text parts."""
    out = []
    for message in messages:
        content = message.get("content")
        item = {
            "role": message.get("role"),
            "parts": [{"type": "text", "content": content if isinstance(content, str) else ""}],
        }
        if finish_reason:
            item["finish_reason"] = finish_reason
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def start_attempt(tracer, spec, attempt: int, result_headers):
    from urllib.parse import urlsplit

    from opentelemetry import trace

    parts = urlsplit(spec.url)
    attributes = {
        "http.request.method": spec.method,
        "server.address": parts.hostname or "",
        # The path only: a base URL's query could carry a credential.
        "url.full": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}",
    }
    if parts.port:
        attributes["server.port"] = parts.port
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    span = tracer.start_span(spec.method, kind=trace.SpanKind.CLIENT, attributes=attributes)
    return span, result_headers


def finish_attempt(handle, result) -> None:
    from opentelemetry.trace import Status, StatusCode

    span, headers_before = handle
    # A new response replaced the headers: this attempt got an answer (else it failed to
    # connect or read, and the status still is an earlier attempt's).
    if result.headers is not headers_before and result.status_code is not None:
        span.set_attribute("http.response.status_code", result.status_code)
    if result.error is not None:
        span.set_attribute("error.type", str(result.error.type))
        span.set_status(Status(StatusCode.ERROR, str(result.error.type)))
    span.end()
