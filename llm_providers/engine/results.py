"""What a call returns: CompletionResult (SPEC §4), ChatResult and EmbeddingResult (§13),
ModelListResult."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import ProviderError
from ..providers.base import TokenUsage


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
    # llm_providers.limits.Admission (x-ratelimit-* headers), None for unlimited tenants
    admission: object = field(default=None, repr=False, compare=False)

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


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for; `arguments` is the JSON string (OpenAI's shape)."""

    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    def as_openai(self) -> dict:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class ChatResult(CompletionResult):
    """A chat call's outcome (SPEC §13): a CompletionResult plus tool calls and the token
    details. `prompt_tokens` counts every input token, cached ones included."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens

    def as_dict(self) -> dict:
        return {
            **super().as_dict(),
            "tool_calls": [c.as_dict() for c in self.tool_calls],
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass
class EmbeddingResult:
    """An embeddings call's outcome (SPEC §13); one vector per input, in order."""

    success: bool
    vectors: list[list[float]] = field(default_factory=list)
    model: str = ""
    prompt_tokens: int = 0
    cost_usd: Decimal | None = None
    usage_log_id: int | None = None
    error: ProviderError | None = None
    provider: str = ""
    latency_ms: int = 0
    attempts: int = 0
    status_code: int | None = None
    upstream_ms: float = 0.0
    # The call's admission under the tenant's limits (SPEC §14), for x-ratelimit-* headers.
    admission: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "success": self.success,
            "vectors": self.vectors,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "usage_log_id": self.usage_log_id,
            "error": self.error.as_dict() if self.error else None,
            "provider": self.provider,
            "latency_ms": self.latency_ms,
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
