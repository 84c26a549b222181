"""Fixtures of the end-to-end tests (run by scripts/e2e.sh, which starts llama-server)."""

import os

import pytest


@pytest.fixture(scope="session")
def llama_base_url():
    url = os.environ.get("SWITCHYARD_E2E_BASE_URL", "").rstrip("/")
    if not url:
        pytest.fail("SWITCHYARD_E2E_BASE_URL is not set: run scripts/e2e.sh (make test-e2e).")
    return url
