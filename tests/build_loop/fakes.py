"""A scripted stand-in for `LLMService` (SPEC §4) for the loop's unit tests.

It returns the real `CompletionResult` / `ProviderError` and, like the real service, writes
one real `UsageLog` row per call, so tests of the build's totals check real rows rather than
the fake's own sums. Scripted replies can run a hook first (e.g. cancel the build mid-call),
which a wire-level fake cannot. test_real_service.py runs the real service over HTTP.
"""

import json
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

from llm_providers.engine.arguments import check_common, check_max_tokens, check_prompt
from llm_providers.errors import ProviderError
from llm_providers.models import UsageLog
from llm_providers.providers.base import TokenUsage
from llm_providers.services import CompletionResult
from llm_providers.usage.pricing import ZERO
from llm_providers.usage.writes import write_usage

# What the rows say the call went to (write_usage reads `config` and `provider`).
_OPENAI = SimpleNamespace(config=None, provider="openai")


@dataclass
class Reply:
    """One scripted answer: content, or an error; `before` runs first (e.g. to cancel)."""

    content: str = ""
    error: ProviderError | None = None
    prompt_tokens: int = 40
    completion_tokens: int = 60
    latency_ms: int = 120
    cost_usd: Decimal | None = Decimal("0.00012000")
    before: object = None


@dataclass
class FakeLLM:
    """Callable like the `LLMService` class: `FakeLLM(...)(tenant_id)` gives a service."""

    replies: list = field(default_factory=list)
    available: bool = True
    calls: list = field(default_factory=list)

    def __call__(self, tenant_id):
        return _FakeService(self, tenant_id)


class _FakeService:
    def __init__(self, fake: FakeLLM, tenant_id):
        self.fake = fake
        self.tenant_id = tenant_id

    def is_available(self) -> bool:
        return self.fake.available

    def generate_completion(
        self,
        prompt,
        max_tokens=1000,
        *,
        system=None,
        model=None,
        temperature=None,
        endpoint="completion",
        metadata=None,
    ):
        # The real service's own argument checks (SPEC §4: bad arguments raise ValueError).
        check_prompt(prompt, system)
        check_max_tokens(max_tokens, required=True)
        check_common(model, temperature, endpoint, metadata)
        if not self.fake.replies:
            raise AssertionError("FakeLLM ran out of scripted replies")
        reply = self.fake.replies.pop(0)
        if isinstance(reply, str):
            reply = Reply(content=reply)
        self.fake.calls.append(
            {
                "prompt": prompt,
                "max_tokens": max_tokens,
                "system": system,
                "model": model,
                "endpoint": endpoint,
                "metadata": dict(metadata or {}),
                "tenant_id": self.tenant_id,
            }
        )
        if callable(reply.before):
            reply.before()
        success = reply.error is None
        prompt_tokens = reply.prompt_tokens if success else 0
        completion_tokens = reply.completion_tokens if success else 0
        used_model = model or "gpt-4o-mini"
        usage = TokenUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        # The real service's usage write; a failure that reported no usage costs 0, as in
        # engine/calls.py (it was not billed).
        usage_log_id = write_usage(
            tenant_id=self.tenant_id,
            resolved=_OPENAI,
            model=used_model,
            endpoint=endpoint,
            success=success,
            usage=usage if success else None,
            cost=reply.cost_usd if success else ZERO,
            latency_ms=reply.latency_ms,
            error=reply.error,
            status_code=reply.error.status_code if reply.error else None,
            metadata=dict(metadata or {}),
        )
        row = UsageLog.objects.get(pk=usage_log_id)
        return CompletionResult(
            success=success,
            content=reply.content if success else "",
            tokens_used=row.tokens_used,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            latency_ms=row.latency_ms,
            provider=row.provider,
            model=used_model,
            finish_reason="stop" if success else None,
            cost_usd=row.cost_usd,
            usage_log_id=row.pk,
            error=reply.error,
        )


# Typical answers of a well-behaved model.
BLUEPRINT = {"title": "Shop", "summary": "A small web shop.", "components": [{"name": "api"}]}
REFINED = {"title": "Shop", "summary": "A small web shop, refined.", "components": []}


def passing_review() -> str:
    return json.dumps({"passed": True, "issues": []})


def failing_review(issue="Missing payments.") -> str:
    return json.dumps({"passed": False, "issues": [issue]})
