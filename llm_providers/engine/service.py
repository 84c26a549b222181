"""LLMService: the one way Switchyard calls a model (SPEC §4).

Where a call goes (the tenant's config or the environment fallback) is resolution.py's
answer; the bookkeeping of a call is calls.py's, streaming is streaming.py's.

Every call writes exactly one UsageLog row (retries are inside it), successful or not,
except for a tenant id that does not exist: there is no tenant to charge, so the call
returns a `configuration` error and writes nothing. A tenant that exists but is inactive
gets a `configuration` error (and its row).

Provider trouble is returned as `success=False` with a normalised `ProviderError`;
programming errors (an empty prompt, max_tokens <= 0, an unknown endpoint…) raise
ValueError. The hot path is one SELECT (the config, with its tenant) and one INSERT (plus,
once per tenant per LLM_LIMITS_CACHE_SECONDS and process, its limits; llm_providers.limits).

A config's `metadata` may hold (all optional):
    {"timeout": 30,            # read timeout in seconds (default LLM_REQUEST_TIMEOUT)
     "deadline": 90,           # overall deadline per call (default LLM_REQUEST_DEADLINE)
     "max_retries": 1,         # default LLM_MAX_RETRIES
     "headers": {"X-Extra": "v"},   # sent with every request (auth headers always win)
     "organization": "org-…", "project": "proj_…",   # OpenAI
     "anthropic_beta": "…",    # Anthropic
     "pricing": {...}}         # see llm_providers.usage.pricing
"""

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tenants.models import Tenant

from ..errors import ErrorType, ProviderError
from ..limits import fallback
from ..models import Endpoint, ProviderConfig
from ..providers.base import BadResponse, parse_json
from ..redaction import register_secret
from ..transport import send as transport
from ..usage.pricing import ZERO
from ..usage.writes import write_usage
from .arguments import check_common, check_max_tokens, check_messages
from .calls import CallRecord, elapsed_ms, log_failure
from .resolution import ResolvedConfig, resolve
from .results import CompletionResult, ModelListResult
from .streaming import ChatStream


class LLMService:
    """Completions for one tenant through its active config (or the environment fallback)."""

    def __init__(
        self, tenant_id: str, *, config: ProviderConfig | None = None, fallbacks: bool = True
    ):
        if isinstance(tenant_id, Tenant):
            tenant_id = tenant_id.pk
        if not isinstance(tenant_id, str) or not tenant_id:
            raise ValueError("tenant_id must be a non-empty string.")
        if config is not None and config.tenant_id != tenant_id:
            raise ValueError("config belongs to another tenant.")
        self.tenant_id = tenant_id
        self._forced_config = config
        # False: calls stay on this one config (the connection test tests one config).
        self._fallbacks = fallbacks
        self._resolved: ResolvedConfig | None = None

    # -- configuration ---------------------------------------------------------------
    def is_available(self) -> bool:
        """Whether a call could be made (a usable config or fallback); no network call."""
        return self.resolve().usable

    @property
    def source(self) -> str | None:
        """ "config", "environment", or None when nothing is usable."""
        resolved = self.resolve()
        return resolved.source if resolved.usable else None

    def describe(self) -> dict:
        """Availability for status pages: source, provider, model, config id, the reason."""
        r = self.resolve()
        return {
            "available": r.usable,
            "source": r.source,
            "provider": r.provider or None,
            "model": r.model or None,
            "config_id": str(r.config.pk) if r.config is not None else None,
            "error": r.error.as_dict() if r.error else None,
        }

    def resolve(self) -> ResolvedConfig:
        """The configuration calls use; looked up once per service instance."""
        if self._resolved is None:
            self._resolved = self._load_config()
        return self._resolved

    def refresh(self) -> None:
        """Forget the looked-up configuration (after the tenant's config changed)."""
        self._resolved = None

    def _load_config(self) -> ResolvedConfig:
        return resolve(self.tenant_id, self._forced_config)

    # -- calls -------------------------------------------------------------------------
    def generate_completion(
        self,
        prompt: str,
        max_tokens: int = 1000,
        *,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.COMPLETION,
        metadata: dict | None = None,
    ) -> CompletionResult:
        """Complete `prompt` (with an optional system prompt); never raises for provider trouble."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string.")
        if system is not None and not isinstance(system, str):
            raise ValueError("system must be a string.")
        check_max_tokens(max_tokens, required=True)
        messages: list[dict] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        return self._complete(
            messages,
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=None,
        )

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CompletionResult:
        """A chat completion from OpenAI-style `messages`; `extra` holds further body fields
        (top_p, stop, …) passed on where the provider has them."""
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        if extra is not None and not isinstance(extra, Mapping):
            raise ValueError("extra must be a mapping.")
        return self._complete(
            list(messages),
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=extra,
        )

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatStream:
        """Start a streaming chat; iterate the returned ChatStream for StreamDeltas.

        Retries happen only before the first byte. The usage row is written when the
        stream ends, fails, or is closed early (a client that went away).
        """
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        check_common(model, temperature, endpoint, metadata)
        resolved = self.resolve()
        chain = fallback.Chain(
            self.tenant_id, resolved, forced=not self._fallbacks, metadata=metadata
        )
        args = (messages, max_tokens, model, temperature, endpoint, extra)
        stream = self._start_stream(resolved, *args, chain.metadata())
        # Fallbacks only before the first byte: a stream that started is returned as it is.
        while (after := chain.next(stream.error)) is not None:
            stream = self._start_stream(after, *args[:2], None, *args[3:], chain.metadata())
        return stream

    def _start_stream(
        self, resolved, messages, max_tokens, model, temperature, endpoint, extra, metadata
    ) -> ChatStream:
        started = time.perf_counter()
        call = CallRecord(self, resolved, list(messages), model, endpoint, metadata, started)
        if not resolved.usable:
            return ChatStream(call, None, None)
        refused = call.admit(max_tokens)  # limits: refused before the first byte
        if refused is not None:
            return ChatStream(call, None, None, error=refused)
        adapter = resolved.adapter
        spec = adapter.build_stream_request(
            base_url=resolved.base_url,
            api_key=resolved.api_key,
            model=call.model,
            messages=call.messages,
            max_tokens=max_tokens,
            temperature=temperature,
            extra=extra,
            headers=adapter.metadata_headers(resolved.metadata),
        )
        outcome = self._send(resolved, spec)
        return ChatStream(call, outcome, adapter)

    def list_models(
        self,
        timeout: float | None = None,
        *,
        endpoint: str = Endpoint.VALIDATION,
        record_usage: bool = True,
    ) -> ModelListResult:
        """The provider's free model list: checks reachability and the key, spends no tokens.

        `timeout` bounds the whole check (read timeout and deadline). A usage row is
        written (endpoint `validation`, no tokens, cost 0) unless `record_usage=False`.
        """
        if endpoint not in Endpoint.values:
            raise ValueError(f"Unknown endpoint {endpoint!r}.")
        started = time.perf_counter()
        resolved = self.resolve()
        result = ModelListResult(
            success=False, provider=resolved.provider, model=resolved.model, source=resolved.source
        )
        outcome = None
        if resolved.usable:
            adapter = resolved.adapter
            register_secret(resolved.api_key)
            spec = adapter.build_models_request(
                base_url=resolved.base_url,
                api_key=resolved.api_key,
                headers=adapter.metadata_headers(resolved.metadata),
            )
            outcome = self._send(resolved, spec, timeout=timeout)
            result.attempts = outcome.attempts
            result.status_code = outcome.status_code
            if outcome.ok:
                try:
                    result.models = adapter.parse_models_response(parse_json(outcome.body))
                    result.success = True
                except BadResponse as exc:
                    result.error = ProviderError(
                        ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
                    )
            else:
                result.error = outcome.error
        else:
            result.error = resolved.error
        result.latency_ms = elapsed_ms(started)
        if not result.success:
            log_failure(self.tenant_id, resolved, result.model, endpoint, result.error)
        if record_usage and resolved.tenant_exists:
            result.usage_log_id = write_usage(
                tenant_id=self.tenant_id,
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

    # -- internals ---------------------------------------------------------------------
    def _complete(self, messages, *, max_tokens, model, temperature, endpoint, metadata, extra):
        check_common(model, temperature, endpoint, metadata)
        resolved = self.resolve()
        chain = fallback.Chain(
            self.tenant_id, resolved, forced=not self._fallbacks, metadata=metadata
        )
        kwargs = dict(max_tokens=max_tokens, temperature=temperature, endpoint=endpoint)
        result = self._complete_with(
            resolved, messages, model=model, metadata=chain.metadata(), extra=extra, **kwargs
        )
        # A transient failure moves on to the next config of the tenant's chain, if any;
        # that config's own default model serves (the request's model is the first's).
        while (after := chain.next(result.error)) is not None:
            result = self._complete_with(
                after, messages, model=None, metadata=chain.metadata(), extra=extra, **kwargs
            )
        return result

    def _complete_with(
        self, resolved, messages, *, max_tokens, model, temperature, endpoint, metadata, extra
    ):
        started = time.perf_counter()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        if not resolved.usable:
            return call.finish(error=resolved.error)
        refused = call.admit(max_tokens)  # limits: reserve, or refuse without a provider call
        if refused is not None:
            return call.finish(error=refused)
        adapter = resolved.adapter
        spec = adapter.build_chat_request(
            base_url=resolved.base_url,
            api_key=resolved.api_key,
            model=call.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            extra=extra,
            headers=adapter.metadata_headers(resolved.metadata),
        )
        outcome = self._send(resolved, spec)
        call.outcome(outcome)
        if not outcome.ok:
            return call.finish(error=outcome.error)
        try:
            reply = adapter.parse_chat_response(parse_json(outcome.body), outcome.headers)
        except BadResponse as exc:
            return call.finish(
                error=ProviderError(
                    ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
                )
            )
        call.request_id = reply.request_id or call.request_id
        return call.finish(
            content=reply.content,
            usage=reply.usage,
            finish_reason=reply.finish_reason,
            provider_finish_reason=reply.provider_finish_reason,
            reported_model=reply.model,
            raw=reply.raw,
        )

    def _send(self, resolved: ResolvedConfig, spec, *, timeout: float | None = None):
        register_secret(resolved.api_key)
        meta = resolved.metadata
        read_timeout = timeout or _positive(meta.get("timeout"))
        deadline = timeout or _positive(meta.get("deadline"))
        max_retries = meta.get("max_retries")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            max_retries = None
        return transport.send(
            spec,
            map_error=resolved.adapter.map_error,
            check=resolved.check_address,
            max_retries=max_retries,
            read_timeout=read_timeout,
            deadline=deadline,
        )


def _positive(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)
