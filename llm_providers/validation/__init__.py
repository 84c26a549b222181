"""Provider validation (SPEC §8): is each active config reachable, with a working key?

The SPEC §4/§8 names live here; report.py holds the outcome types, runner.py the checks,
health.py the shared state /healthz reads, startup.py the start-up thread.
"""

from .runner import LLMStartupValidator, run_llm_startup_validation

__all__ = ["LLMStartupValidator", "run_llm_startup_validation"]
