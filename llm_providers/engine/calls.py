"""One call's policy, transport aside: its request, its reply, its result and usage row.

Plain functions and one bookkeeping class, so that a second (async) transport can reuse
every rule: the service builds the request here, sends it, and hands the outcome back.
"""

import logging
import time

from django.conf import settings

from tenants.context import current_request_id

from .. import limits, observability
from ..errors import ErrorType, ProviderError
from ..limits import breaker
from ..providers.base import BadResponse, HttpRequestSpec, TokenUsage, parse_json
from ..transport.send import HttpResult
from ..usage.pricing import ZERO, cost_usd
from ..usage.writer import writer
from ..usage.writes import usage_row, write_usage
from .aio import on_server_pool, run_db, run_db_to_end, to_end
from .options import CallLimits, CallOptions
from .resolution import ResolvedConfig
from .results import ChatResult, CompletionResult, ModelListResult, ToolCall

logger = logging.getLogger(__name__)


class CallRecord:
    """The bookkeeping of one call: builds the result and writes its one usage row."""

    # chat() and stream_chat() set ChatResult (tool calls and token details).
    result_class: type[CompletionResult] = CompletionResult

    def __init__(self, service, resolved, messages, model, endpoint, metadata, started):
        self.service = service
        self.resolved = resolved
        self.messages = messages
        self.model = model or resolved.model
        self.endpoint = endpoint
        self.metadata = metadata
        self.started = started
        self.attempts = 0
        self.status_code = None
        self.request_id = None
        self.upstream_seconds = 0.0
        # [issue 12: request ids] The serving request's X-Request-ID, read now: a stream's
        # usage row is written after the view (and its request context) has returned.
        self.serving_request_id = current_request_id()
        # [issue 12: metrics, traces] In flight from here; the call's span starts.
        self.observed = observability.call_started(
            tenant_id=service.tenant_id,
            endpoint=endpoint,
            provider=resolved.provider,
            model=self.model,
            source=resolved.source,
            messages=messages,
        )
        self.admission = None  # llm_providers.limits: the call's reservation, if any
        self.breaker_key = None  # the config whose circuit breaker counts this attempt
        self._breaker_settled = False  # afinish found nothing for the breaker to record

    def admit(self, max_tokens, *, on_loop=None) -> ProviderError | None:
        """Switchyard's own limits (SPEC §14): reserve the call's worst case, or refuse it.

        The one admission call site of the engine; `finish` settles it. The config's
        circuit breaker is asked first: an open breaker skips the config (no provider call,
        no reservation). `on_loop`: the tenant's policy (known to set no limits) when the
        breaker is known closed too, as `aadmit` found them: nothing is looked up again.
        """
        resolved = self.resolved
        key = breaker.breaker_key(resolved)
        allowed, wait = (True, None) if on_loop is not None else breaker.allow(key)
        if not allowed:
            return ProviderError(
                ErrorType.OVERLOADED,
                "The provider config's circuit breaker is open after repeated failures; "
                f"retry in {max(1, round(wait or 1))} s.",
                status_code=503,
                retry_after=wait,
            )
        self.breaker_key = key
        self.admission = limits.admit(
            self.service.tenant_id,
            provider=resolved.provider,
            model=self.model,
            messages=self.messages,
            max_tokens=max_tokens,
            metadata=resolved.metadata,
            policy=on_loop,
        )
        return self.admission.error if self.admission is not None else None

    async def aadmit(self, max_tokens) -> ProviderError | None:
        """`admit` for the async path: on the loop when it needs no I/O (the tenant known
        to have no limits, the breaker known to be closed), else on a thread. Decided once:
        a cache entry expiring meanwhile must not turn into I/O on the loop."""
        if on_server_pool():
            policy = limits.cached_policy(self.service.tenant_id)
            if (
                policy is not None
                and policy.limits is None
                and breaker.known_clean(breaker.breaker_key(self.resolved))
            ):
                return self.admit(max_tokens, on_loop=policy)
        return await run_db(self.admit, max_tokens)

    def outcome(self, outcome: HttpResult) -> None:
        self.attempts = outcome.attempts
        self.status_code = outcome.status_code
        self.upstream_seconds = outcome.upstream_seconds
        observability.call_sent(self.observed)  # [issue 12: traces]
        if outcome.headers is not None and self.resolved.adapter is not None:
            self.request_id = self.resolved.adapter.request_id(outcome.headers)

    def finish(self, **outcome) -> CompletionResult:
        """The call's result, with its usage row written (and its admission settled)."""
        result, row = self.conclude(**outcome)
        try:
            if row is not None:
                result.usage_log_id = write_usage(**row)
        finally:
            # After the row (reconciliation counts rows); also when the INSERT failed, and
            # when there is no row (a tenant that does not exist still took its slot).
            limits.settle(self.admission, tokens=result.tokens_used, cost=result.cost_usd)
        return result

    async def afinish(self, **outcome) -> CompletionResult:
        """`finish` for the async path, to its end even when the task is cancelled: on the
        loop when only the row needs I/O (handed to the process's usage writer, awaited
        without a thread), else on a thread."""
        if not self._finishes_on_loop(outcome.get("error"), outcome.get("extra_metadata")):
            return await run_db_to_end(self.finish, **outcome)
        result, row = self.conclude(**outcome)
        try:
            if row is not None:
                result.usage_log_id = await to_end(writer.asubmit(usage_row(**row)))
        finally:
            limits.settle(self.admission, tokens=result.tokens_used, cost=result.cost_usd)
        return result

    def _finishes_on_loop(self, error, extra_metadata) -> bool:
        """Decided once: a success is then not recorded again by a breaker known closed
        (its trust expiring meanwhile must not turn into I/O on the loop)."""
        if not on_server_pool():
            return False
        admission = self.admission
        if admission is not None and admission.hold_id is not None:
            return False  # settling the hold is a backend write
        if (extra_metadata or {}).get("cancelled"):
            return True  # not counted by the breaker
        if breaker.record_needs_io(self.breaker_key, error.type if error else None):
            return False
        self._breaker_settled = True  # nothing for the breaker to record
        return True

    def conclude(
        self,
        *,
        content: str = "",
        usage: TokenUsage | None = None,
        error: ProviderError | None = None,
        finish_reason: str | None = None,
        provider_finish_reason: str | None = None,
        reported_model: str | None = None,
        raw: dict | None = None,
        extra_metadata: dict | None = None,
        tool_calls: list[dict] | None = None,
    ) -> tuple[CompletionResult, dict | None]:
        """The call's result and its usage row's fields (None: no row, unknown tenant)."""
        resolved = self.resolved
        success = error is None
        if success or usage is not None:
            # A success without reported usage costs None (unknown), or 0 on a free provider.
            cost = cost_usd(
                resolved.provider,
                self.model,
                usage,
                metadata=resolved.metadata,
                reported_model=reported_model,
            )
        else:
            cost = ZERO  # a failure that reported no usage was not billed
        tokens = usage or TokenUsage()
        details = {}
        if self.result_class is ChatResult:
            details = {
                "tool_calls": [
                    ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                    for c in (tool_calls or [])
                ]
                if success
                else [],
                "cache_read_tokens": tokens.cached_prompt_tokens,
                "cache_write_tokens": tokens.cache_write_tokens,
                "reasoning_tokens": tokens.reasoning_tokens,
            }
        result = self.result_class(
            **details,
            success=success,
            content=content if success else "",
            tokens_used=tokens.total_tokens,
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            latency_ms=elapsed_ms(self.started),
            provider=resolved.provider,
            model=self.model,
            finish_reason=finish_reason,
            cost_usd=cost,
            error=error,
            attempts=self.attempts,
            status_code=error.status_code if error else self.status_code,
            request_id=self.request_id,
            provider_finish_reason=provider_finish_reason,
            upstream_ms=round(self.upstream_seconds * 1000, 3),
            source=resolved.source,
            usage=usage,
            raw=raw or {},
            admission=self.admission,
        )
        # [issue 12: metrics, traces] Counted once per call; the span ends.
        observability.record_call(self.observed, result, reported_model=reported_model)
        if error is not None:
            log_failure(self.service.tenant_id, resolved, self.model, self.endpoint, error)
        # A call cancelled because its client left says nothing about the provider: it is
        # neither a failure nor a success for the breaker. (Counted as a connection error,
        # the 1,024 calls a load's clients drop at once opened the breaker, and the next
        # calls were all refused.)
        if not (extra_metadata or {}).get("cancelled") and not self._breaker_settled:
            breaker.record(self.breaker_key, error.type if error is not None else None)
        if not resolved.tenant_exists:
            return result, None
        meta = dict(self.metadata or {})
        meta["attempts"] = self.attempts
        meta["source"] = resolved.source
        # [issue 12: request ids] One logical call's id: a fallback chain's (already in
        # the metadata), else the serving request's X-Request-ID, else the provider's; the
        # provider's own id is then kept as upstream_request_id.
        if "request_id" not in meta:
            if self.serving_request_id:
                meta["request_id"] = self.serving_request_id
            elif self.request_id:
                meta["request_id"] = self.request_id
        if self.request_id and meta.get("request_id") != self.request_id:
            meta["upstream_request_id"] = self.request_id
        if finish_reason:
            meta["finish_reason"] = finish_reason
        if provider_finish_reason and provider_finish_reason != finish_reason:
            meta["provider_finish_reason"] = provider_finish_reason
        if reported_model and reported_model != self.model:
            meta["reported_model"] = reported_model
        if usage is not None:
            meta.update(usage.details())
        if error is not None and error.retry_after is not None:
            meta["retry_after"] = error.retry_after
        if extra_metadata:
            meta.update(extra_metadata)
        if self.admission is not None:
            meta.update(self.admission.usage_metadata())
        if settings.LLM_LOG_PROMPTS:
            meta["prompt"] = self.messages
            if success:
                meta["response"] = content
        row = dict(
            tenant_id=self.service.tenant_id,
            resolved=resolved,
            model=self.model,
            endpoint=self.endpoint,
            success=success,
            usage=usage,
            cost=cost,
            latency_ms=result.latency_ms,
            error=error,
            status_code=result.status_code,
            metadata=meta,
        )
        return result, row


def log_failure(tenant_id, resolved, model, endpoint, error) -> None:
    logger.warning(
        "LLM call failed: tenant=%s provider=%s model=%s endpoint=%s error=%s",
        tenant_id,
        resolved.provider or "-",
        model or "-",
        endpoint,
        error,
    )


def elapsed_ms(started: float) -> int:
    return int(round((time.perf_counter() - started) * 1000))


def call_limits(resolved: ResolvedConfig, options: CallOptions | None) -> CallLimits:
    """The operator's settings, lowered by the config's metadata, lowered by the call."""
    return resolved.options.capped(options).limits()


def chat_request(
    call: CallRecord, *, max_tokens, temperature, extra, stream: bool = False
) -> HttpRequestSpec:
    """The chat (or streaming chat) request of a call whose resolution is usable."""
    resolved = call.resolved
    adapter = resolved.require_adapter()
    build = adapter.build_stream_request if stream else adapter.build_chat_request
    return build(
        base_url=resolved.base_url,
        api_key=resolved.api_key,
        model=call.model,
        messages=call.messages,
        max_tokens=max_tokens,
        temperature=temperature,
        extra=extra,
        headers=adapter.metadata_headers(resolved.metadata),
    )


def finish_chat(call: CallRecord, outcome: HttpResult) -> CompletionResult:
    """The result (and usage row) of a non-streaming chat from the transport's outcome."""
    return call.finish(**chat_outcome(call, outcome))


async def afinish_chat(call: CallRecord, outcome: HttpResult) -> CompletionResult:
    return await call.afinish(**chat_outcome(call, outcome))


def chat_outcome(call: CallRecord, outcome: HttpResult) -> dict:
    """What a non-streaming chat's reply says, as `CallRecord.finish` takes it."""
    adapter = call.resolved.require_adapter()
    call.outcome(outcome)
    if not outcome.ok:
        return {"error": outcome.error}
    try:
        reply = adapter.parse_chat_response(parse_json(outcome.body or b""), outcome.headers)
    except BadResponse as exc:
        return {
            "error": ProviderError(
                ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
            )
        }
    call.request_id = reply.request_id or call.request_id
    return {
        "content": reply.content,
        "usage": reply.usage,
        "finish_reason": reply.finish_reason,
        "provider_finish_reason": reply.provider_finish_reason,
        "reported_model": reply.model,
        "raw": reply.raw,
        "tool_calls": reply.tool_calls,
    }


def models_request(resolved: ResolvedConfig) -> HttpRequestSpec:
    adapter = resolved.require_adapter()
    return adapter.build_models_request(
        base_url=resolved.base_url,
        api_key=resolved.api_key,
        headers=adapter.metadata_headers(resolved.metadata),
    )


def finish_models(
    tenant_id: str,
    resolved: ResolvedConfig,
    outcome: HttpResult | None,
    *,
    started: float,
    endpoint: str,
    record_usage: bool,
) -> ModelListResult:
    """The model-list check's result (and usage row); `outcome` None: nothing was sent."""
    result = ModelListResult(
        success=False, provider=resolved.provider, model=resolved.model, source=resolved.source
    )
    if outcome is None:
        result.error = resolved.error
    else:
        adapter = resolved.require_adapter()
        result.attempts = outcome.attempts
        result.status_code = outcome.status_code
        if outcome.ok:
            try:
                result.models = adapter.parse_models_response(parse_json(outcome.body or b""))
                result.success = True
            except BadResponse as exc:
                result.error = ProviderError(
                    ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
                )
        else:
            result.error = outcome.error
    result.latency_ms = elapsed_ms(started)
    observability.record_models_call(tenant_id=tenant_id, endpoint=endpoint, result=result)
    if not result.success:
        log_failure(tenant_id, resolved, result.model, endpoint, result.error)
    if record_usage and resolved.tenant_exists:
        result.usage_log_id = write_usage(
            tenant_id=tenant_id,
            resolved=resolved,
            model=result.model,
            endpoint=endpoint,
            success=result.success,
            usage=None,
            cost=ZERO,
            latency_ms=result.latency_ms,
            error=result.error,
            status_code=result.status_code,
            metadata={"attempts": result.attempts, "models_listed": len(result.models)},
        )
    return result
