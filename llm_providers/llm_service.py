"""LLMService: the one way Switchyard calls a model (SPEC §4).

Configuration source, in order: the tenant's active ProviderConfig (or the one forced with
`config=`); else the environment fallback (LLM_DEFAULT_PROVIDER, LLM_DEFAULT_MODEL,
LLM_DEFAULT_BASE_URL and the provider's key variable); else unavailable.

Every call writes exactly one UsageLog row (retries are inside it), successful or not,
except for a tenant id that does not exist: there is no tenant to charge, so the call
returns a `configuration` error and writes nothing. A tenant that exists but is inactive
gets a `configuration` error (and its row).

Provider trouble is returned as `success=False` with a normalised `ProviderError`;
programming errors (an empty prompt, max_tokens <= 0, an unknown endpoint…) raise
ValueError. The hot path is one SELECT (the config, with its tenant) and one INSERT.

A config's `metadata` may hold (all optional):
    {"timeout": 30,            # read timeout in seconds (default LLM_REQUEST_TIMEOUT)
     "deadline": 90,           # overall deadline per call (default LLM_REQUEST_DEADLINE)
     "max_retries": 1,         # default LLM_MAX_RETRIES
     "headers": {"X-Extra": "v"},   # sent with every request (auth headers always win)
     "organization": "org-…", "project": "proj_…",   # OpenAI
     "anthropic_beta": "…",    # Anthropic
     "pricing": {...}}         # see llm_providers.pricing
"""

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.db import IntegrityError, connection

from tenants.models import Tenant

from . import hotpath, http
from .errors import ErrorType, ProviderError
from .models import Endpoint, KeyStatus, ProviderConfig, UsageLog
from .pricing import ZERO, cost_usd
from .providers.base import (
    BadResponse,
    ProviderAdapter,
    StreamDelta,
    StreamState,
    TokenUsage,
    iter_sse,
    parse_json,
)
from .providers.registry import UnknownProvider, get_adapter
from .redaction import register_secret

logger = logging.getLogger(__name__)

SOURCE_CONFIG = "config"
SOURCE_ENVIRONMENT = "environment"
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass
class CompletionResult:
    """The outcome of one call; `as_dict()` is JSON-safe (cost as a decimal string)."""

    success: bool
    content: str = ""
    tokens_used: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    provider: str = ""
    model: str = ""
    finish_reason: str | None = None
    cost_usd: Decimal | None = None
    usage_log_id: int | None = None
    error: ProviderError | None = None
    attempts: int = 0
    # Beyond SPEC §4, for the gateway and the status/test endpoints:
    status_code: int | None = None
    request_id: str | None = None
    provider_finish_reason: str | None = None  # as the provider said it (end_turn, …)
    upstream_ms: float = 0.0  # time on the wire (Server-Timing), waits excluded
    source: str | None = None  # "config" or "environment"
    usage: TokenUsage | None = field(default=None, repr=False)
    raw: dict = field(default_factory=dict, repr=False)  # the provider's decoded reply

    def as_dict(self) -> dict:
        return {
            "success": self.success,
            "content": self.content,
            "tokens_used": self.tokens_used,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "usage_log_id": self.usage_log_id,
            "error": self.error.as_dict() if self.error else None,
            "attempts": self.attempts,
        }


@dataclass
class ModelListResult:
    """The outcome of the free model-list check (startup validation)."""

    success: bool
    models: list[str] = field(default_factory=list)
    latency_ms: int = 0
    provider: str = ""
    model: str = ""  # the configured default model
    error: ProviderError | None = None
    attempts: int = 0
    status_code: int | None = None
    usage_log_id: int | None = None
    source: str | None = None

    def as_dict(self) -> dict:
        return {
            "success": self.success,
            "models": self.models,
            "latency_ms": self.latency_ms,
            "provider": self.provider,
            "model": self.model,
            "error": self.error.as_dict() if self.error else None,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "usage_log_id": self.usage_log_id,
        }


@dataclass
class ResolvedConfig:
    """Where a call goes: provider, model, base URL, key, and whether it is usable."""

    source: str | None
    provider: str = ""
    model: str = ""
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    adapter: ProviderAdapter | None = None
    config: ProviderConfig | None = None
    metadata: dict = field(default_factory=dict)
    check_address: bool = False  # tenant-supplied base URL: check the peer when connecting
    tenant_exists: bool = True
    error: ProviderError | None = None

    @property
    def usable(self) -> bool:
        return self.error is None


class LLMService:
    """Completions for one tenant through its active config (or the environment fallback)."""

    def __init__(self, tenant_id: str, *, config: ProviderConfig | None = None):
        if isinstance(tenant_id, Tenant):
            tenant_id = tenant_id.pk
        if not isinstance(tenant_id, str) or not tenant_id:
            raise ValueError("tenant_id must be a non-empty string.")
        if config is not None and config.tenant_id != tenant_id:
            raise ValueError("config belongs to another tenant.")
        self.tenant_id = tenant_id
        self._forced_config = config
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
        config = self._forced_config
        if config is None:
            config = hotpath.active_config(self.tenant_id)
        if config is not None:
            return self._from_config(config)
        tenant_active = (
            Tenant.objects.filter(pk=self.tenant_id).values_list("is_active", flat=True).first()
        )
        if tenant_active is None:
            return ResolvedConfig(
                source=None,
                tenant_exists=False,
                error=_config_error(f"Unknown tenant {self.tenant_id!r}."),
            )
        if not tenant_active:
            return ResolvedConfig(source=None, error=_config_error("The tenant is not active."))
        return self._from_environment()

    def _from_config(self, config: ProviderConfig) -> ResolvedConfig:
        resolved = ResolvedConfig(
            source=SOURCE_CONFIG,
            provider=config.provider,
            model=config.default_model,
            config=config,
            metadata=config.metadata if isinstance(config.metadata, dict) else {},
            check_address=bool(config.base_url),
        )
        tenant_active = getattr(config, "tenant_is_active", None)
        if tenant_active is None:  # a config handed in with config=
            tenant_active = config.tenant.is_active
        if not tenant_active:
            resolved.error = _config_error("The tenant is not active.")
            return resolved
        try:
            resolved.adapter = adapter = get_adapter(config.provider)
        except UnknownProvider as exc:
            resolved.error = _config_error(str(exc))
            return resolved
        status = config.key_status
        if status == KeyStatus.UNDECRYPTABLE:
            logger.warning(
                "provider config %s (tenant %s): stored key cannot be decrypted with "
                "FIELD_ENCRYPTION_KEY",
                config.pk,
                config.tenant_id,
            )
            resolved.error = _config_error(
                "The stored API key cannot be decrypted with FIELD_ENCRYPTION_KEY; "
                "restore the encryption key or enter the API key again."
            )
            return resolved
        if status == KeyStatus.OK:
            resolved.api_key = config.api_key_encrypted
        elif adapter.requires_api_key:
            resolved.error = _config_error(f"The {config.provider} config has no API key.")
            return resolved
        resolved.base_url = adapter.resolve_base_url(config.base_url)
        if not resolved.base_url:
            resolved.error = _config_error(f"The {config.provider} config has no base URL.")
        elif not resolved.model:
            resolved.error = _config_error("The config has no default model.")
        return resolved

    def _from_environment(self) -> ResolvedConfig:
        provider = (settings.LLM_DEFAULT_PROVIDER or "").strip().lower()
        if not provider:
            return ResolvedConfig(
                source=None,
                error=_config_error(
                    "No active provider config for this tenant and no LLM_DEFAULT_PROVIDER."
                ),
            )
        resolved = ResolvedConfig(
            source=SOURCE_ENVIRONMENT,
            provider=provider,
            model=(settings.LLM_DEFAULT_MODEL or "").strip(),
        )
        try:
            resolved.adapter = adapter = get_adapter(provider)
        except UnknownProvider:
            resolved.error = _config_error("LLM_DEFAULT_PROVIDER names an unknown provider.")
            return resolved
        key = getattr(settings, adapter.key_setting, "") if adapter.key_setting else ""
        resolved.api_key = (key or "").strip() or None
        if adapter.requires_api_key and not resolved.api_key:
            resolved.error = _config_error(
                f"LLM_DEFAULT_PROVIDER is {provider} but {adapter.key_setting} is not set."
            )
            return resolved
        # Operator-supplied URLs are trusted: no connect-time address check.
        resolved.base_url = adapter.resolve_base_url(settings.LLM_DEFAULT_BASE_URL or None)
        if not resolved.base_url:
            resolved.error = _config_error(
                f"LLM_DEFAULT_BASE_URL is required for LLM_DEFAULT_PROVIDER={provider}."
            )
        elif not resolved.model:
            resolved.error = _config_error("LLM_DEFAULT_MODEL is not set.")
        return resolved

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
        _check_max_tokens(max_tokens, required=True)
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
        _check_messages(messages)
        _check_max_tokens(max_tokens, required=False)
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
    ) -> "ChatStream":
        """Start a streaming chat; iterate the returned ChatStream for StreamDeltas.

        Retries happen only before the first byte. The usage row is written when the
        stream ends, fails, or is closed early (a client that went away).
        """
        _check_messages(messages)
        _check_max_tokens(max_tokens, required=False)
        _check_common(model, temperature, endpoint, metadata)
        started = time.perf_counter()
        resolved = self.resolve()
        call = _Call(self, resolved, list(messages), model, endpoint, metadata, started)
        if not resolved.usable:
            return ChatStream(call, None, None)
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
        result.latency_ms = _elapsed_ms(started)
        if not result.success:
            _log_failure(self.tenant_id, resolved, result.model, endpoint, result.error)
        if record_usage and resolved.tenant_exists:
            result.usage_log_id = _write_usage(
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
        _check_common(model, temperature, endpoint, metadata)
        started = time.perf_counter()
        resolved = self.resolve()
        call = _Call(self, resolved, messages, model, endpoint, metadata, started)
        if not resolved.usable:
            return call.finish(error=resolved.error)
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
        return http.send(
            spec,
            map_error=resolved.adapter.map_error,
            check=resolved.check_address,
            max_retries=max_retries,
            read_timeout=read_timeout,
            deadline=deadline,
        )


class _Call:
    """The bookkeeping of one call: builds the result and writes its one usage row."""

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

    def outcome(self, outcome: http.HttpResult) -> None:
        self.attempts = outcome.attempts
        self.status_code = outcome.status_code
        self.upstream_seconds = outcome.upstream_seconds
        if outcome.headers is not None and self.resolved.adapter is not None:
            self.request_id = self.resolved.adapter.request_id(outcome.headers)

    def finish(
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
    ) -> CompletionResult:
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
        result = CompletionResult(
            success=success,
            content=content if success else "",
            tokens_used=tokens.total_tokens,
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            latency_ms=_elapsed_ms(self.started),
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
        )
        if error is not None:
            _log_failure(self.service.tenant_id, resolved, self.model, self.endpoint, error)
        if not resolved.tenant_exists:
            return result
        meta = dict(self.metadata or {})
        meta["attempts"] = self.attempts
        meta["source"] = resolved.source
        if self.request_id:
            meta["request_id"] = self.request_id
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
        if settings.LLM_LOG_PROMPTS:
            meta["prompt"] = self.messages
            if success:
                meta["response"] = content
        result.usage_log_id = _write_usage(
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
        return result


class ChatStream:
    """Iterate for StreamDeltas; `result` holds the CompletionResult once the stream ended.

    `error` is set at once when the call failed before streaming (no config, an HTTP
    error, a refused address…); iterating then yields nothing. `close()` (called at the
    end, by a `with` block, or by the WSGI server when the client goes away) records the
    usage row exactly once, with the text and usage received so far.
    """

    def __init__(self, call: _Call, outcome, adapter):
        self._call = call
        self._adapter = adapter
        self._response = None
        self._parts: list[str] = []
        self._state = StreamState()
        self._done = False
        self._ended = False
        self._stream_error: ProviderError | None = None
        self.result: CompletionResult | None = None
        self.error: ProviderError | None = None
        if outcome is None:
            self.error = call.resolved.error
        else:
            call.outcome(outcome)
            if outcome.ok:
                self._response = outcome.response
            else:
                self.error = outcome.error
        if self.error is not None:
            self.result = call.finish(error=self.error)

    def __iter__(self) -> Iterator[StreamDelta]:
        if self._response is None:
            return
        try:
            for event in iter_sse(self._response.iter_content(chunk_size=None)):
                delta = self._adapter.parse_stream_event(event, self._state)
                if delta is None:
                    continue
                if delta.error is not None:
                    self._stream_error = delta.error
                    yield delta
                    break
                if delta.text:
                    self._parts.append(delta.text)
                yield delta
                if delta.done:
                    self._done = True
                    break
            else:
                self._ended = True  # the upstream closed the stream
        except (requests.RequestException, OSError) as exc:  # the connection broke mid-stream
            error, _ = http._transport_error(exc, self._response.url)
            self._stream_error = error
            yield StreamDelta(error=error)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        if self.result is not None:
            return
        if self._response is not None:
            self._response.close()
        state = self._state
        error = self._stream_error
        finished = self._done or state.finish_reason is not None
        extra = None
        if not finished and not error:
            # Ended by the upstream without a finish reason, or abandoned by our caller.
            extra = {"stream_incomplete": True} if self._ended else {"client_disconnected": True}
        self.result = self._call.finish(
            content="".join(self._parts),
            usage=state.usage,
            error=error,
            finish_reason=state.finish_reason,
            provider_finish_reason=state.provider_finish_reason,
            reported_model=state.model,
            extra_metadata={"stream": True, **(extra or {})},
        )


# -- helpers ---------------------------------------------------------------------------
def _write_usage(
    *,
    tenant_id,
    resolved: ResolvedConfig,
    model,
    endpoint,
    success,
    usage,
    cost,
    latency_ms,
    error,
    status_code,
    metadata,
) -> int:
    tokens = usage or TokenUsage()
    row = UsageLog(
        tenant_id=tenant_id,
        provider_config_id=resolved.config.pk if resolved.config is not None else None,
        provider=resolved.provider or "",
        model=model or "",
        endpoint=endpoint,
        tokens_used=tokens.total_tokens,
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
        cost_usd=cost,
        latency_ms=latency_ms,
        success=success,
        error_type=error.type if error else "",
        error_message=error.message if error else "",
        status_code=status_code,
        metadata=metadata,
    )
    return _save_usage_row(row)


def _save_usage_row(row: UsageLog) -> int:
    """Insert the row; if its config was deleted during the call, keep the row without it.

    A config can vanish while a call runs (a long call, or a caller such as the /v1 gateway
    holding it in a short cache while another process deletes it). The usage still
    happened: the row is written as on_delete=SET_NULL would have left it. (Inside a
    caller's transaction the deferred foreign key is only checked at its commit.)
    """
    try:
        return hotpath.insert_usage_log(row)
    except IntegrityError:
        config_id = row.provider_config_id
        if (
            connection.in_atomic_block
            or config_id is None
            or ProviderConfig.objects.filter(pk=config_id).exists()
        ):
            raise
    logger.info(
        "provider config %s was deleted during a call; usage row kept without it", config_id
    )
    row.provider_config_id = None
    row.metadata = {**(row.metadata or {}), "provider_config_deleted": True}
    return hotpath.insert_usage_log(row)


def _log_failure(tenant_id, resolved, model, endpoint, error) -> None:
    logger.warning(
        "LLM call failed: tenant=%s provider=%s model=%s endpoint=%s error=%s",
        tenant_id,
        resolved.provider or "-",
        model or "-",
        endpoint,
        error,
    )


def _config_error(message: str) -> ProviderError:
    return ProviderError(ErrorType.CONFIGURATION, message)


def _elapsed_ms(started: float) -> int:
    return int(round((time.perf_counter() - started) * 1000))


def _positive(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _check_max_tokens(max_tokens, *, required: bool) -> None:
    if max_tokens is None and not required:
        return
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise ValueError("max_tokens must be a positive integer.")


def _check_common(model, temperature, endpoint, metadata) -> None:
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ValueError("model must be a non-empty string when given.")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError("temperature must be a number.")
        if not 0 <= temperature <= 2:
            raise ValueError("temperature must be between 0 and 2.")
    if endpoint not in Endpoint.values:
        raise ValueError(f"Unknown endpoint {endpoint!r}; expected one of {Endpoint.values}.")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be a dict.")
        try:
            json.dumps(metadata)
        except (TypeError, ValueError):
            raise ValueError("metadata must be JSON-serialisable.") from None


def _check_messages(messages) -> None:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content} objects.")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in MESSAGE_ROLES:
            raise ValueError("Each message needs a role: system, user, assistant or tool.")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ValueError("A message's content must be a string or a list of parts.")
