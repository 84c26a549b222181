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
    {"timeout": 30,            # read timeout in seconds (at most LLM_REQUEST_TIMEOUT)
     "deadline": 90,           # overall deadline per call (at most LLM_REQUEST_DEADLINE)
     "max_retries": 1,         # at most LLM_MAX_RETRIES (see options.py)
     "headers": {"X-Extra": "v"},   # sent with every request (auth headers always win)
     "organization": "org-…", "project": "proj_…",   # OpenAI
     "anthropic_beta": "…",    # Anthropic
     "pricing": {...}}         # see llm_providers.usage.pricing
"""

import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError

from tenants import get_tenant_model

from ..errors import ErrorType, ProviderError
from ..limits import fallback
from ..models import Endpoint, ProviderConfig
from ..providers.base import UnsupportedFeature
from ..redaction import register_secret
from ..transport import asend as atransport
from ..transport import send as transport
from .aio import cancellable, run_db
from .arguments import (
    check_common,
    check_max_tokens,
    check_messages,
    check_options,
    check_prompt,
)
from .calls import (
    CallRecord,
    afinish_chat,
    call_limits,
    chat_request,
    finish_chat,
    finish_models,
    models_request,
)
from .embeddings import arun_embed, run_embed
from .options import CallOptions
from .resolution import ResolvedConfig, resolve
from .results import ChatResult, CompletionResult, EmbeddingResult, ModelListResult
from .streaming import AsyncChatStream, ChatStream


class LLMService:
    """Completions for one tenant through its active config (or the environment fallback)."""

    def __init__(
        self,
        tenant_id: str | int,
        *,
        config: ProviderConfig | None = None,
        resolved: ResolvedConfig | None = None,
        fallbacks: bool = True,
    ):
        """`config` forces a stored config; `resolved` hands in a resolution made earlier
        (the /v1 cache): no lookup at all. Neither: the tenant's own, looked up once.
        `fallbacks=False` keeps calls on that one config (a connection test)."""
        tenant_model = get_tenant_model()
        if isinstance(tenant_id, tenant_model):
            tenant_id = tenant_id.pk
        # The tenant model's primary key: a string (SPEC's slugs) or an integer (a host's
        # own model, SWITCHYARD_TENANT_MODEL); "5" becomes 5 for an integer key.
        if isinstance(tenant_id, bool) or not isinstance(tenant_id, str | int) or tenant_id == "":
            raise ValueError("tenant_id must be a non-empty string or an integer.")
        try:
            tenant_id = tenant_model._meta.pk.to_python(tenant_id)
        except ValidationError:
            raise ValueError(f"Invalid tenant id {tenant_id!r}.") from None
        if config is not None and config.tenant_id != tenant_id:
            raise ValueError("config belongs to another tenant.")
        if resolved is not None:
            if config is not None:
                raise ValueError("Pass config or resolved, not both.")
            if resolved.tenant_id != tenant_id:
                raise ValueError("resolved belongs to another tenant.")
        self.tenant_id = tenant_id
        self._forced_config = config
        # False: calls stay on this one config (the connection test tests one config).
        self._fallbacks = fallbacks
        self._resolved: ResolvedConfig | None = resolved

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
        return self.resolve().describe()

    def resolve(self) -> ResolvedConfig:
        """The configuration calls use; looked up once per service instance."""
        if self._resolved is None:
            self._resolved = self._load_config()
        return self._resolved

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
        options: CallOptions | None = None,
    ) -> CompletionResult:
        """Complete `prompt` (with an optional system prompt); never raises for provider trouble.

        `options` lower this call's limits (timeout, deadline, retries); see options.py."""
        return self._complete(
            _prompt_messages(prompt, system, max_tokens),
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=None,
            options=options,
        )

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> ChatResult:
        """A chat completion from OpenAI-style `messages` (SPEC §13).

        `tools`, `tool_choice` and `response_format` take OpenAI's shapes whatever the
        provider; `extra` holds further OpenAI body fields (top_p, stop, …). A field the
        provider cannot honour is an `invalid_request` error naming it, never dropped.
        """
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        return self._complete(
            list(messages),
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=chat_extra(extra, tools, tool_choice, response_format),
            options=options,
            result_class=ChatResult,
        )

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> ChatStream:
        """Start a streaming chat; iterate the returned ChatStream for its events.

        Events are StreamDeltas: text (`text`), tool-call fragments (`tool_calls`, one
        stable `index` per call), and a last one with `done=True` carrying the ChatResult
        in `result`. Retries happen only before the first byte; so do fallbacks to the
        tenant's next config. The usage row is written when the stream ends, fails, or is
        closed early (a client that went away).
        """
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        extra = chat_extra(extra, tools, tool_choice, response_format)
        resolved = self.resolve()
        chain = fallback.Chain(
            self.tenant_id, resolved, forced=not self._fallbacks, metadata=metadata
        )
        call = dict(messages=list(messages), max_tokens=max_tokens, temperature=temperature)
        call.update(endpoint=endpoint, extra=extra, options=options)
        stream = self._start_stream(resolved, model=model, metadata=chain.metadata(), **call)
        # Fallbacks only before the first byte: a stream that started is returned as it is.
        # A later config serves with its own default model (the request's is the first's).
        while (after := chain.next(stream.error)) is not None:
            stream = self._start_stream(after, model=None, metadata=chain.metadata(), **call)
        return stream

    def embed(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        endpoint: str = Endpoint.EMBEDDING,
        metadata: dict | None = None,
        options: CallOptions | None = None,
    ) -> EmbeddingResult:
        """Embeddings of one text or a list of texts (SPEC §13): one vector per input.

        Never raises for provider trouble; a provider without an embeddings API
        (Anthropic, Groq) is an `invalid_request` error. One usage row per call.
        """
        check_options(options)
        return run_embed(
            self,
            inputs,
            model=model,
            dimensions=dimensions,
            endpoint=endpoint,
            metadata=metadata,
            send=lambda resolved, spec: _send(resolved, spec, options),
        )

    def list_models(
        self,
        timeout: float | None = None,
        *,
        endpoint: str = Endpoint.VALIDATION,
        record_usage: bool = True,
        options: CallOptions | None = None,
    ) -> ModelListResult:
        """The provider's free model list: checks reachability and the key, spends no tokens.

        `timeout` is short for options with that timeout and deadline (it bounds the whole
        check). A usage row is written (endpoint `validation`, no tokens, cost 0) unless
        `record_usage=False`.
        """
        if endpoint not in Endpoint.values:
            raise ValueError(f"Unknown endpoint {endpoint!r}.")
        check_options(options)
        if timeout is not None:
            options = CallOptions(timeout=timeout, deadline=timeout).capped(options)
        started = time.perf_counter()
        resolved = self.resolve()
        outcome = None
        if resolved.usable:
            outcome = _send(resolved, models_request(resolved), options)
        return finish_models(
            self.tenant_id,
            resolved,
            outcome,
            started=started,
            endpoint=endpoint,
            record_usage=record_usage,
        )

    # -- the async API (SPEC §12): the same arguments, results and rules ------------
    async def aresolve(self) -> ResolvedConfig:
        """`resolve()` without blocking the loop (the lookup runs on a thread)."""
        if self._resolved is None:
            self._resolved = await run_db(self._load_config)
        return self._resolved

    async def agenerate_completion(
        self,
        prompt: str,
        max_tokens: int = 1000,
        *,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.COMPLETION,
        metadata: dict | None = None,
        options: CallOptions | None = None,
    ) -> CompletionResult:
        """`generate_completion`, awaitable: the provider call costs a socket, not a thread."""
        return await self._acomplete(
            _prompt_messages(prompt, system, max_tokens),
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=None,
            options=options,
        )

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> ChatResult:
        """`chat`, awaitable. Cancelling the task (a client that left) stops the provider
        call (its connection is closed) and writes the row with `client_disconnected`."""
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        return await self._acomplete(
            list(messages),
            max_tokens=max_tokens,
            model=model,
            temperature=temperature,
            endpoint=endpoint,
            metadata=metadata,
            extra=chat_extra(extra, tools, tool_choice, response_format),
            options=options,
            result_class=ChatResult,
        )

    async def astream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        temperature: float | None = None,
        endpoint: str = Endpoint.CHAT,
        metadata: dict | None = None,
        extra: Mapping[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> AsyncChatStream:
        """`stream_chat`, awaitable: `async for delta in await service.astream_chat(…)`.

        The same StreamDeltas; the usage row is written when the stream ends, fails, or is
        closed early (`await stream.aclose()`, or the task cancelled)."""
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        extra = chat_extra(extra, tools, tool_choice, response_format)
        resolved = await self.aresolve()
        chain = await _achain(self, resolved, metadata)
        call = dict(messages=list(messages), max_tokens=max_tokens, temperature=temperature)
        call.update(endpoint=endpoint, extra=extra, options=options)
        stream = await self._astart_stream(resolved, model=model, metadata=chain.metadata(), **call)
        # Fallbacks only before the first byte, as in stream_chat.
        while (after := await _anext(chain, stream.error)) is not None:
            stream = await self._astart_stream(after, model=None, metadata=chain.metadata(), **call)
        return stream

    async def aembed(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        endpoint: str = Endpoint.EMBEDDING,
        metadata: dict | None = None,
        options: CallOptions | None = None,
    ) -> EmbeddingResult:
        """`embed`, awaitable. Cancelling the task (a client that left) closes the provider
        connection and writes the row with `client_disconnected`."""
        check_options(options)
        return await arun_embed(
            self,
            inputs,
            model=model,
            dimensions=dimensions,
            endpoint=endpoint,
            metadata=metadata,
            send=lambda resolved, spec: _asend(resolved, spec, options),
        )

    # -- internals ---------------------------------------------------------------------
    def _send(self, resolved: ResolvedConfig, spec, options: CallOptions | None = None):
        """The sync transport, for the engine's helpers (passthrough, embeddings)."""
        return _send(resolved, spec, options)

    def _start_stream(
        self,
        resolved,
        *,
        messages,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
    ) -> ChatStream:
        started = time.perf_counter()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        call.result_class = ChatResult
        if not resolved.usable:
            return ChatStream(call, None, None)
        refused = call.admit(max_tokens)  # limits: refused before the first byte
        if refused is not None:
            return ChatStream(call, None, None, error=refused)
        try:
            spec = chat_request(
                call, max_tokens=max_tokens, temperature=temperature, extra=extra, stream=True
            )
        except UnsupportedFeature as exc:
            return ChatStream(call, None, None, error=unsupported_error(exc))
        outcome = _send(resolved, spec, options)
        return ChatStream(call, outcome, resolved.adapter)

    def _complete(
        self,
        messages,
        *,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
        result_class=CompletionResult,
    ):
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        resolved = self.resolve()
        chain = fallback.Chain(
            self.tenant_id, resolved, forced=not self._fallbacks, metadata=metadata
        )
        call = dict(messages=messages, max_tokens=max_tokens, temperature=temperature)
        call.update(endpoint=endpoint, extra=extra, options=options, result_class=result_class)
        result = self._complete_with(resolved, model=model, metadata=chain.metadata(), **call)
        # A transient failure moves on to the next config of the tenant's chain, if any;
        # that config's own default model serves (the request's model is the first's).
        while (after := chain.next(result.error)) is not None:
            result = self._complete_with(after, model=None, metadata=chain.metadata(), **call)
        return result

    def _complete_with(
        self,
        resolved,
        *,
        messages,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
        result_class,
    ):
        started = time.perf_counter()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        call.result_class = result_class
        if not resolved.usable:
            return call.finish(error=resolved.error)
        refused = call.admit(max_tokens)  # limits: reserve, or refuse without a provider call
        if refused is not None:
            return call.finish(error=refused)
        try:
            spec = chat_request(call, max_tokens=max_tokens, temperature=temperature, extra=extra)
        except UnsupportedFeature as exc:
            return call.finish(error=unsupported_error(exc))
        return finish_chat(call, _send(resolved, spec, options))

    async def _astart_stream(
        self,
        resolved,
        *,
        messages,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
    ) -> AsyncChatStream:
        started = time.perf_counter()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        call.result_class = ChatResult
        error = resolved.error
        if error is None:
            error = await call.aadmit(max_tokens)  # limits: before the first byte
        if error is None:
            try:
                spec = chat_request(
                    call, max_tokens=max_tokens, temperature=temperature, extra=extra, stream=True
                )
            except UnsupportedFeature as exc:
                error = unsupported_error(exc)
        if error is not None:
            stream = AsyncChatStream(call, None, None, error=error)
            stream.result = await call.afinish(error=error)
            return stream
        outcome = await cancellable(call, _asend(resolved, spec, options))
        stream = AsyncChatStream(call, outcome, resolved.adapter)
        if stream.error is not None:
            stream.result = await call.afinish(error=stream.error)
        return stream

    async def _acomplete(
        self,
        messages,
        *,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
        result_class=CompletionResult,
    ):
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        resolved = await self.aresolve()
        chain = await _achain(self, resolved, metadata)
        call = dict(messages=messages, max_tokens=max_tokens, temperature=temperature)
        call.update(endpoint=endpoint, extra=extra, options=options, result_class=result_class)
        result = await self._acomplete_with(
            resolved, model=model, metadata=chain.metadata(), **call
        )
        while (after := await _anext(chain, result.error)) is not None:
            result = await self._acomplete_with(
                after, model=None, metadata=chain.metadata(), **call
            )
        return result

    async def _acomplete_with(
        self,
        resolved,
        *,
        messages,
        max_tokens,
        model,
        temperature,
        endpoint,
        metadata,
        extra,
        options,
        result_class,
    ):
        started = time.perf_counter()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        call.result_class = result_class
        if not resolved.usable:
            return await call.afinish(error=resolved.error)
        refused = await call.aadmit(max_tokens)
        if refused is not None:
            return await call.afinish(error=refused)
        try:
            spec = chat_request(call, max_tokens=max_tokens, temperature=temperature, extra=extra)
        except UnsupportedFeature as exc:
            return await call.afinish(error=unsupported_error(exc))
        outcome = await cancellable(call, _asend(resolved, spec, options))
        return await afinish_chat(call, outcome)


def _chain(service: "LLMService", resolved: ResolvedConfig, metadata) -> fallback.Chain:
    return fallback.Chain(
        service.tenant_id, resolved, forced=not service._fallbacks, metadata=metadata
    )


async def _achain(service: "LLMService", resolved: ResolvedConfig, metadata) -> fallback.Chain:
    """`_chain` on the loop when its policy is cached (the common case), else on a thread:
    with warm caches a call takes a thread only for its admission and its usage row."""
    forced = not service._fallbacks
    if fallback.Chain.needs_query(service.tenant_id, resolved, forced=forced):
        return await run_db(_chain, service, resolved, metadata)
    return _chain(service, resolved, metadata)


async def _anext(chain: fallback.Chain, error):
    """`chain.next(error)`, on a thread only when a fallback may follow (it may query)."""
    if not chain.may_fall_back(error):
        return None
    return await run_db(chain.next, error)


def _prompt_messages(prompt, system, max_tokens) -> list[dict]:
    check_prompt(prompt, system)
    check_max_tokens(max_tokens, required=True)
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return messages


def chat_extra(extra, tools, tool_choice, response_format) -> dict:
    """`extra` with the named chat options merged in (the named ones win)."""
    if extra is not None and not isinstance(extra, Mapping):
        raise ValueError("extra must be a mapping.")
    merged = dict(extra or {})
    for name, value in (
        ("tools", tools),
        ("tool_choice", tool_choice),
        ("response_format", response_format),
    ):
        if value is None:
            continue
        if name == "tools":
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
                raise ValueError("tools must be a list of tool definitions.")
            value = list(value)
        merged[name] = value
    if merged.get("tools") is not None and not isinstance(merged["tools"], list):
        raise ValueError("tools must be a list of tool definitions.")
    return merged


def unsupported_error(exc: UnsupportedFeature) -> ProviderError:
    return ProviderError(ErrorType.INVALID_REQUEST, exc.message, param=exc.param)


# -- the transports: the only part the sync and async paths do differently ---------------
def _transport_args(resolved: ResolvedConfig, options: CallOptions | None) -> dict:
    register_secret(resolved.api_key)
    limits = call_limits(resolved, options)
    return {
        "map_error": resolved.require_adapter().map_error,
        "check": resolved.check_address,
        "max_retries": limits.max_retries,
        "read_timeout": limits.read_timeout,
        "deadline": limits.deadline,
    }


def _send(resolved: ResolvedConfig, spec, options: CallOptions | None):
    return transport.send(spec, **_transport_args(resolved, options))


async def _asend(resolved: ResolvedConfig, spec, options: CallOptions | None):
    return await atransport.asend(spec, **_transport_args(resolved, options))
