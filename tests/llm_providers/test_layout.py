"""The layout's promises that a refactor could silently break."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_adapters_import_no_django():
    # Adapters are pure: resolution gives them base_url and api_key (issue 13, P1).
    script = (
        "import sys\n"
        "import llm_providers.providers.registry\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'tenants')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_spec_import_paths():
    from llm_providers.services import CompletionResult, LLMService, llm_provider_service
    from llm_providers.validation import LLMStartupValidator, run_llm_startup_validation

    assert callable(llm_provider_service.save_provider_config)
    assert callable(LLMService) and callable(CompletionResult)
    assert callable(LLMStartupValidator) and callable(run_llm_startup_validation)
