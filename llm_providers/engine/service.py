"""LLMService: the one way Switchyard calls a model (SPEC §4).

Where a call goes (the tenant's config or the environment fallback) is resolution.py's
answer; the bookkeeping of a call is calls.py's, streaming is streaming.py's.

Every call writes exactly one UsageLog row (retries are inside it), successful or not,
except for a tenant id that does not exist: there is no tenant to charge, so the call
returns a `configuration` error and writes nothing. A tenant that exists but is inactive
gets a `configuration` error (and its row).

Provider trouble is returned as `success=False` with a normalised `ProviderError`;
programming errors (an empty prompt, max_tokens <= 0, an unknown endpoint…) raise
ValueError. The hot path is one SELECT (the config, with its tenant) and one INSERT.

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

from ..models import Endpoint, ProviderConfig
from ..redaction import register_secret
from ..transport import send as transport
from .arguments import (
    check_common,
    check_max_tokens,
    check_messages,
    check_options,
    check_prompt,
)
from .calls import (
    CallRecord,
    call_limits,
    chat_request,
    finish_chat,
    finish_models,
    models_request,
)
from .options import CallOptions
from .resolution import ResolvedConfig, resolve
from .results import CompletionResult, ModelListResult
from .streaming import ChatStream


class LLMService:
    """Completions for one tenant through its active config (or the environment fallback)."""

    def __init__(
        self,
        tenant_id: str,
        *,
        config: ProviderConfig | None = None,
        resolved: ResolvedConfig | None = None,
    ):
        """`config` forces a stored config; `resolved` hands in a resolution made earlier
        (the /v1 cache): no lookup at all. Neither: the tenant's own, looked up once."""
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
        check_prompt(prompt, system)
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
            options=options,
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
        options: CallOptions | None = None,
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
            options=options,
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
        options: CallOptions | None = None,
    ) -> ChatStream:
        """Start a streaming chat; iterate the returned ChatStream for StreamDeltas.

        Retries happen only before the first byte. The usage row is written when the
        stream ends, fails, or is closed early (a client that went away).
        """
        check_messages(messages)
        check_max_tokens(max_tokens, required=False)
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        started = time.perf_counter()
        resolved = self.resolve()
        call = CallRecord(self, resolved, list(messages), model, endpoint, metadata, started)
        if not resolved.usable:
            return ChatStream(call, None, None)
        spec = chat_request(
            call, max_tokens=max_tokens, temperature=temperature, extra=extra, stream=True
        )
        outcome = _send(resolved, spec, options)
        return ChatStream(call, outcome, resolved.adapter)

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

    # -- internals ---------------------------------------------------------------------
    def _complete(
        self, messages, *, max_tokens, model, temperature, endpoint, metadata, extra, options
    ):
        check_common(model, temperature, endpoint, metadata)
        check_options(options)
        started = time.perf_counter()
        resolved = self.resolve()
        call = CallRecord(self, resolved, messages, model, endpoint, metadata, started)
        if not resolved.usable:
            return call.finish(error=resolved.error)
        spec = chat_request(call, max_tokens=max_tokens, temperature=temperature, extra=extra)
        return finish_chat(call, _send(resolved, spec, options))


# -- the sync transport: the only part an async twin does differently -------------------
def _send(resolved: ResolvedConfig, spec, options: CallOptions | None):
    register_secret(resolved.api_key)
    limits = call_limits(resolved, options)
    return transport.send(
        spec,
        map_error=resolved.require_adapter().map_error,
        check=resolved.check_address,
        max_retries=limits.max_retries,
        read_timeout=limits.read_timeout,
        deadline=limits.deadline,
    )
