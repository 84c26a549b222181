"""The SPEC §4 import path: `llm_provider_service`, `LLMService` and its results (§4, §13);
with `Endpoint`, `usage_totals` and `build_step_span`, everything the build loop uses of
llm_providers (the import contracts in .importlinter keep it that way).

The code lives by role: config operations in `configs/services.py`, the service in
`engine/`. Nothing imports back from here, so there is no import cycle to dodge.
"""

from ..configs.services import llm_provider_service
from ..engine.results import ChatResult, CompletionResult, EmbeddingResult, ToolCall
from ..engine.service import LLMService
from ..models import Endpoint
from ..observability import build_step_span
from ..usage.selectors import usage_totals

__all__ = [
    "ChatResult",
    "CompletionResult",
    "EmbeddingResult",
    "Endpoint",
    "LLMService",
    "ToolCall",
    "build_step_span",
    "llm_provider_service",
    "usage_totals",
]
