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


def test_the_import_contracts_hold():
    # .importlinter: the architecture's arrows (README, Code map); `make lint` runs it too.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_dead_code_stays_removed():
    # Nothing called these (issue 13, point 8); the stats oracle lives in tests/support.
    from build_loop.models import Build
    from llm_providers.services import LLMService
    from llm_providers.usage import selectors

    assert not hasattr(LLMService, "refresh")
    assert not hasattr(Build, "is_finished")
    for name in ("usage_stats_in_window", "usage_stats_for_tenant", "usage_logs_for_tenant"):
        assert not hasattr(selectors, name), name
