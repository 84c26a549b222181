"""A SERVER span for each HTTP request, when tracing is on (tracing.py).

Off, the middleware removes itself at start-up (MiddlewareNotUsed): no cost per request.
An incoming W3C `traceparent` (and `tracestate`) makes the span a child of the caller's.
A streamed answer's span ends when the stream does (Django closes the response then).
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed

from . import tracing


class TracingMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        if tracing.tracer() is None:
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        span, token = _start(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            _fail(span, token, exc)
            raise
        return _finish(span, token, request, response)

    async def _acall(self, request):
        span, token = _start(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            _fail(span, token, exc)
            raise
        return _finish(span, token, request, response)


def _start(request):
    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {}
    for header in ("traceparent", "tracestate"):
        value = request.META.get("HTTP_" + header.upper())
        if value:
            carrier[header] = value
    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    span = tracing.tracer().start_span(
        request.method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": request.path},
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    return span, token


def _finish(span, token, request, response):
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    context.detach(token)
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        span.set_attribute("http.route", match.route)
        span.update_name(f"{request.method} {match.route}")
    span.set_attribute("http.response.status_code", response.status_code)
    request_id = getattr(request, "request_id", None)
    if request_id:
        span.set_attribute("switchyard.request_id", request_id)
    if response.status_code >= 500:
        span.set_attribute("error.type", str(response.status_code))
        span.set_status(Status(StatusCode.ERROR))
    if response.streaming:
        response._resource_closers.append(_closer(span))  # called by response.close()
    else:
        span.end()
    return response


def _closer(span):
    def end_span():
        span.end()

    # Ending a span only queues it for the batch exporter: config/serving/handler.py may
    # close the response on the event loop instead of a thread (no import of config here).
    end_span.switchyard_on_loop = True  # type: ignore[attr-defined]
    return end_span


def _fail(span, token, exc):
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    context.detach(token)
    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR))
    span.end()
