"""The SPEC §4 import path: `llm_provider_service`, `LLMService` and its results (§4, §13).

The code lives by role: config operations in `configs/services.py`, the service in
`engine/`. Nothing imports back from here, so there is no import cycle to dodge.
"""

from ..configs.services import llm_provider_service
from ..engine.results import ChatResult, CompletionResult, EmbeddingResult, ToolCall
from ..engine.service import LLMService

__all__ = [
    "ChatResult",
    "CompletionResult",
    "EmbeddingResult",
    "LLMService",
    "ToolCall",
    "llm_provider_service",
]
