"""LLMService.embed() / aembed(): one embeddings call, its result and its one usage row
(SPEC §12, §13).

The call is an `EmbedCall`: built before the provider is asked (arguments checked, the
request made, or the refusal), finished after (the reply parsed, priced, its row written).
Only the send between the two differs: `run_embed` uses the service's sync transport,
`arun_embed` the async one, with the ORM work of `finish` on a thread (engine/aio.py).
"""

import time
from decimal import Decimal

from django.conf import settings

from .. import limits
from ..errors import ErrorType, ProviderError
from ..models import Endpoint
from ..providers.base import BadResponse, UnsupportedFeature, parse_json
from ..usage.pricing import ZERO, cost_usd
from ..usage.writes import write_usage
from .aio import cancellable, run_db, run_db_to_end
from .arguments import check_common
from .calls import elapsed_ms, log_failure
from .results import EmbeddingResult

MAX_INPUTS = 2048  # OpenAI's own limit per request


def check_inputs(inputs) -> list[str]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list | tuple) or not inputs:
        raise ValueError("inputs must be a non-empty string or list of strings.")
    if len(inputs) > MAX_INPUTS:
        raise ValueError(f"At most {MAX_INPUTS} inputs per call.")
    if not all(isinstance(i, str) and i for i in inputs):
        raise ValueError("Each input must be a non-empty string.")
    return list(inputs)


def check_embed(inputs, model, dimensions, endpoint, metadata) -> list[str]:
    """The programming errors (ValueError), before anything is looked up or sent."""
    inputs = check_inputs(inputs)
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0
    ):
        raise ValueError("dimensions must be a positive integer.")
    check_common(model, None, endpoint, metadata)
    return inputs


def run_embed(service, inputs, *, model, dimensions, endpoint, metadata, send) -> EmbeddingResult:
    """`send(resolved, spec)` is the service's sync transport."""
    inputs = check_embed(inputs, model, dimensions, endpoint, metadata)
    started = time.perf_counter()
    resolved = service.resolve()
    call = EmbedCall(service, resolved, inputs, model, dimensions, endpoint, metadata, started)
    call.admit()
    outcome = send(call.resolved, call.spec) if call.spec is not None else None
    return call.finish(outcome)


async def arun_embed(
    service, inputs, *, model, dimensions, endpoint, metadata, send
) -> EmbeddingResult:
    """`run_embed`, awaitable: `send(resolved, spec)` is a coroutine (the async transport).

    Cancelling the task (a client that left) closes the provider connection and writes
    the row with `client_disconnected`, as `achat` does."""
    inputs = check_embed(inputs, model, dimensions, endpoint, metadata)
    started = time.perf_counter()
    resolved = await service.aresolve()
    call = EmbedCall(service, resolved, inputs, model, dimensions, endpoint, metadata, started)
    await run_db(call.admit)
    outcome = None
    if call.spec is not None:
        outcome = await cancellable(call, send(call.resolved, call.spec))
    return await call.afinish(outcome)


class EmbedCall:
    """One embeddings call: its request (or why there is none) and, at the end, its row."""

    def __init__(self, service, resolved, inputs, model, dimensions, endpoint, metadata, started):
        self.started = started
        self.service = service
        self.resolved = resolved
        self.inputs = inputs
        self.model = model or resolved.model
        self.dimensions = dimensions
        self.endpoint = endpoint
        self.metadata = metadata
        self.spec = None  # the HTTP request to send; None: refused before any
        self.error: ProviderError | None = None
        self.admission = None  # llm_providers.limits: the call's reservation, if any
        self.spent: tuple[int, Decimal | None] = (0, ZERO)  # (tokens, cost) to settle with
        if not resolved.usable:
            self.error = resolved.error
            return
        adapter = resolved.adapter
        try:
            self.spec = adapter.build_embeddings_request(
                base_url=resolved.base_url,
                api_key=resolved.api_key,
                model=self.model,
                inputs=inputs,
                dimensions=dimensions,
                headers=adapter.metadata_headers(resolved.metadata),
            )
        except UnsupportedFeature as exc:
            self.error = ProviderError(ErrorType.INVALID_REQUEST, exc.message, param=exc.param)

    def admit(self) -> None:
        """The tenant's limits (SPEC §14), as for a chat: reserve the inputs' tokens (an
        embedding has no output) and their price, or refuse the call before it is sent.
        Settled in `finish`."""
        if self.spec is None:
            return
        resolved = self.resolved
        self.admission = limits.admit(
            self.service.tenant_id,
            provider=resolved.provider,
            model=self.model,
            messages=[{"role": "user", "content": text} for text in self.inputs],
            max_tokens=None,
            metadata=resolved.metadata,
            completion_tokens=0,
        )
        if self.admission is not None and self.admission.error is not None:
            self.error = self.admission.error
            self.spec = None

    def ignored_dimensions(self, vectors) -> ProviderError | None:
        """Some servers (llama.cpp's llama-server) ignore `dimensions` and answer full-size
        vectors: an error naming the field, never vectors of a size the caller did not ask."""
        if self.dimensions is None:
            return None
        sizes = sorted({len(v) for v in vectors})
        if sizes == [self.dimensions]:
            return None
        return ProviderError(
            ErrorType.INVALID_REQUEST,
            f"{self.resolved.adapter.label} did not honour `dimensions` ({self.dimensions} "
            f"asked, {', '.join(map(str, sizes))} returned): this model or server cannot "
            "shorten its vectors; leave `dimensions` out.",
            param="dimensions",
        )

    async def afinish(self, outcome=None, **kwargs) -> EmbeddingResult:
        """`finish` for the async path, on a thread, to its end even when cancelled."""
        return await run_db_to_end(self.finish, outcome, **kwargs)

    def finish(
        self, outcome=None, *, error: ProviderError | None = None, extra_metadata=None
    ) -> EmbeddingResult:
        """The result and its usage row, from the transport's outcome (None: not sent) or
        an `error` of Switchyard's own (the client left); then the admission is settled
        with what was spent (also when the row's write failed). Sync: it writes to the
        database."""
        try:
            return self._finish(outcome, error=error, extra_metadata=extra_metadata)
        finally:
            tokens, cost = self.spent
            limits.settle(self.admission, tokens=tokens, cost=cost)

    def _finish(self, outcome, *, error, extra_metadata) -> EmbeddingResult:
        resolved = self.resolved
        model = self.model
        result = EmbeddingResult(success=False, model=model or "", provider=resolved.provider or "")
        result.error = error or self.error
        result.admission = self.admission
        usage = None
        reported_model = None
        if outcome is not None:
            result.attempts = outcome.attempts
            result.status_code = outcome.status_code
            result.upstream_ms = round(outcome.upstream_seconds * 1000, 3)
            if not outcome.ok:
                result.error = outcome.error
            else:
                adapter = resolved.adapter
                try:
                    reply = adapter.parse_embeddings_response(parse_json(outcome.body))
                    if len(reply.vectors) != len(self.inputs):
                        raise BadResponse(
                            f"{len(reply.vectors)} vectors for {len(self.inputs)} inputs."
                        )
                except BadResponse as exc:
                    result.error = ProviderError(
                        ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
                    )
                else:
                    usage = reply.usage
                    reported_model = reply.model
                    result.error = self.ignored_dimensions(reply.vectors)
                    if result.error is None:
                        result.success = True
                        result.vectors = reply.vectors
        if usage is not None:
            # Embeddings have no output: every token is an input token.
            usage.completion_tokens = 0
            usage.total_tokens = usage.prompt_tokens
            result.prompt_tokens = usage.prompt_tokens
        if usage is not None:  # the tokens were spent, even on vectors refused here
            result.cost_usd = cost_usd(
                resolved.provider,
                model,
                usage,
                metadata=resolved.metadata,
                reported_model=reported_model,
            )
        else:
            result.cost_usd = ZERO
        result.latency_ms = elapsed_ms(self.started)
        self.spent = (result.prompt_tokens, result.cost_usd)
        if result.error is not None:
            log_failure(self.service.tenant_id, resolved, model, self.endpoint, result.error)
        if resolved.tenant_exists:
            meta = dict(self.metadata or {})
            meta.update(
                {"attempts": result.attempts, "source": resolved.source, "inputs": len(self.inputs)}
            )
            if self.dimensions is not None:
                meta["dimensions"] = self.dimensions
            if reported_model and reported_model != model:
                meta["reported_model"] = reported_model
            if settings.LLM_LOG_PROMPTS:
                meta["prompt"] = self.inputs
            if extra_metadata:
                meta.update(extra_metadata)
            if self.admission is not None:
                meta.update(self.admission.usage_metadata())
            result.usage_log_id = write_usage(
                tenant_id=self.service.tenant_id,
                resolved=resolved,
                model=model,
                endpoint=self.endpoint if self.endpoint else Endpoint.EMBEDDING,
                success=result.success,
                usage=usage,
                cost=result.cost_usd,
                latency_ms=result.latency_ms,
                error=result.error,
                status_code=result.error.status_code if result.error else result.status_code,
                metadata=meta,
            )
        return result
