"""LLMService.embed(): one embeddings call, its result and its one usage row (SPEC §13)."""

import time

from django.conf import settings

from ..errors import ErrorType, ProviderError
from ..models import Endpoint
from ..providers.base import BadResponse, UnsupportedFeature, parse_json
from ..usage.pricing import ZERO, cost_usd
from ..usage.writes import write_usage
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


def run_embed(service, inputs, *, model, dimensions, endpoint, metadata, send) -> EmbeddingResult:
    """`send(resolved, spec)` is the transport (the service's sync one, or an async twin's)."""
    inputs = check_inputs(inputs)
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0
    ):
        raise ValueError("dimensions must be a positive integer.")
    check_common(model, None, endpoint, metadata)
    started = time.perf_counter()
    resolved = service.resolve()
    model = model or resolved.model
    result = EmbeddingResult(success=False, model=model or "", provider=resolved.provider or "")
    usage = None
    reported_model = None
    outcome = None
    if not resolved.usable:
        result.error = resolved.error
    else:
        adapter = resolved.adapter
        try:
            spec = adapter.build_embeddings_request(
                base_url=resolved.base_url,
                api_key=resolved.api_key,
                model=model,
                inputs=inputs,
                dimensions=dimensions,
                headers=adapter.metadata_headers(resolved.metadata),
            )
        except UnsupportedFeature as exc:
            result.error = ProviderError(ErrorType.INVALID_REQUEST, exc.message, param=exc.param)
        else:
            outcome = send(resolved, spec)
            result.attempts = outcome.attempts
            result.status_code = outcome.status_code
            result.upstream_ms = round(outcome.upstream_seconds * 1000, 3)
            if not outcome.ok:
                result.error = outcome.error
            else:
                try:
                    reply = adapter.parse_embeddings_response(parse_json(outcome.body))
                    if len(reply.vectors) != len(inputs):
                        raise BadResponse(f"{len(reply.vectors)} vectors for {len(inputs)} inputs.")
                except BadResponse as exc:
                    result.error = ProviderError(
                        ErrorType.BAD_RESPONSE, f"{adapter.label}: {exc}", outcome.status_code
                    )
                else:
                    result.success = True
                    result.vectors = reply.vectors
                    usage = reply.usage
                    reported_model = reply.model
    if usage is not None:
        # Embeddings have no output: every token is an input token.
        usage.completion_tokens = 0
        usage.total_tokens = usage.prompt_tokens
        result.prompt_tokens = usage.prompt_tokens
    if result.success:
        result.cost_usd = cost_usd(
            resolved.provider,
            model,
            usage,
            metadata=resolved.metadata,
            reported_model=reported_model,
        )
    else:
        result.cost_usd = ZERO
    result.latency_ms = elapsed_ms(started)
    if result.error is not None:
        log_failure(service.tenant_id, resolved, model, endpoint, result.error)
    if resolved.tenant_exists:
        meta = dict(metadata or {})
        meta.update({"attempts": result.attempts, "source": resolved.source, "inputs": len(inputs)})
        if dimensions is not None:
            meta["dimensions"] = dimensions
        if reported_model and reported_model != model:
            meta["reported_model"] = reported_model
        if settings.LLM_LOG_PROMPTS:
            meta["prompt"] = inputs
        result.usage_log_id = write_usage(
            tenant_id=service.tenant_id,
            resolved=resolved,
            model=model,
            endpoint=endpoint if endpoint else Endpoint.EMBEDDING,
            success=result.success,
            usage=usage,
            cost=result.cost_usd,
            latency_ms=result.latency_ms,
            error=result.error,
            status_code=result.error.status_code if result.error else result.status_code,
            metadata=meta,
        )
    return result
