"""Metrics and traces (SPEC §15) behind a few hooks, so the engine stays readable.

The hooks, each called from one place:
- `call_started(...)` / `call_sent(obs)` / `record_call(obs, result)`: engine/calls.py,
  when a call's bookkeeping starts (CallRecord), when its request came back from the
  transport, and when its result is built (every call, sync or async, success or not,
  streams when they end). Counts the call, its tokens, cost and duration, the calls in
  flight, and its `chat <model>` span.
- `record_models_call(...)`: engine/calls.py, a model-list check's result.
- `attempt_started(spec, n, result)` / `attempt_finished(handle, result)`:
  transport/send.py, around each HTTP attempt (a span; nothing when tracing is off).
- `gateway_overhead(seconds)`: gateway/views.py, where Server-Timing is computed.
- `build_step_span(...)`: build_loop/services.py, around a build step's call.

metrics.py and tracing.py hold the how; views.py serves /metrics.
"""

import weakref
from contextlib import nullcontext

from . import metrics, tracing


class ObservedCall:
    """What the hooks keep about one call between its start and its end."""

    __slots__ = ("tenant_id", "endpoint", "span", "_inflight", "__weakref__")

    def __init__(self, tenant_id, endpoint):
        self.tenant_id = tenant_id
        self.endpoint = endpoint
        self.span = None
        metrics.INFLIGHT.inc()
        # Decremented by record_call, or when the call is dropped without a result (an
        # exception between start and end): never left "in flight" for ever.
        self._inflight = weakref.finalize(self, metrics.INFLIGHT.dec)

    def ended(self) -> bool:
        """Mark the call as no longer in flight; False if it already was."""
        if not self._inflight.alive:
            return False
        self._inflight()
        return True


def call_started(*, tenant_id, endpoint, provider, model, source=None, messages=None):
    obs = ObservedCall(tenant_id, endpoint)
    tracer = tracing.tracer()
    if tracer is not None:
        obs.span = tracing.CallSpan(
            tracer,
            tenant_id=tenant_id,
            endpoint=endpoint,
            provider=provider,
            model=model,
            source=source,
            messages=messages,
        )
    return obs


def call_sent(obs: ObservedCall) -> None:
    if obs.span is not None:
        obs.span.sent()


def record_call(obs: ObservedCall, result, *, reported_model=None) -> None:
    """Count a finished call (once, however often it is called)."""
    if not obs.ended():
        return
    outcome = "success" if result.success else str(result.error.type)
    metrics.record(
        tenant_id=obs.tenant_id,
        provider=result.provider,
        model=result.model,
        endpoint=obs.endpoint,
        outcome=outcome,
        usage=result.usage,
        cost=result.cost_usd,
        seconds=(result.latency_ms or 0) / 1000,
    )
    if obs.span is not None:
        obs.span.finish(result, reported_model=reported_model)


def record_models_call(*, tenant_id, endpoint, result) -> None:
    outcome = "success" if result.success else str(result.error.type)
    metrics.record(
        tenant_id=tenant_id,
        provider=result.provider,
        model=result.model,
        endpoint=endpoint,
        outcome=outcome,
        usage=None,
        cost=None,
        seconds=(result.latency_ms or 0) / 1000,
    )


def attempt_started(spec, attempt: int, result):
    tracer = tracing.tracer()
    if tracer is None:
        return None
    return tracing.start_attempt(tracer, spec, attempt, result.headers)


def attempt_finished(handle, result) -> None:
    if handle is not None:
        tracing.finish_attempt(handle, result)


def gateway_overhead(seconds: float) -> None:
    metrics.OVERHEAD.observe(seconds)


def build_step_span(*, build_id, step: str, iteration: int):
    tracer = tracing.tracer()
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(
        f"build_step {step}",
        attributes={
            "switchyard.build.id": str(build_id),
            "switchyard.build.step": step,
            "switchyard.build.iteration": iteration,
        },
    )
