"""The SPEC §4 import path: `llm_provider_service`, `LLMService` and `CompletionResult`;
with `Endpoint` and `usage_totals`, everything the build loop uses of llm_providers
(the import contracts in .importlinter keep it that way).

The code lives by role: config operations in `configs/services.py`, the service in
`engine/`. Nothing imports back from here, so there is no import cycle to dodge.
"""

from ..configs.services import llm_provider_service
from ..engine.results import CompletionResult
from ..engine.service import LLMService
from ..models import Endpoint
from ..usage.selectors import usage_totals

__all__ = ["CompletionResult", "Endpoint", "LLMService", "llm_provider_service", "usage_totals"]
