"""The machine's Chromium driven by Playwright, at an operator's laptop size (1366 × 768).

Chromium missing: outside CI the browser tests are skipped with how to install it; under
CI (CI=true) they fail, so a CI machine without it cannot pass them silently. Screenshots
go to BROWSER_SCREENSHOTS_DIR (default var/test-artifacts/screenshots/, gitignored).
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright
from pytest_httpserver import HTTPServer

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1366, "height": 768}
MISSING = (
    "Chromium not found at /usr/bin/chromium (or CHROMIUM_PATH): install Debian's "
    "`chromium` package (apt-get install -y chromium). Browser tests never download one."
)


def chromium_path() -> str:
    """The machine's own Chromium (Debian's package); tests never download a browser."""
    candidates = [os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(MISSING, pytrace=False)
    pytest.skip(f"{MISSING} (Skipped outside CI; under CI=true this fails.)")


def screenshots_dir() -> Path:
    directory = Path(
        os.environ.get("BROWSER_SCREENSHOTS_DIR") or ROOT / "var" / "test-artifacts" / "screenshots"
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def screenshot(request):
    """`screenshot(page, "name")`: a full-page PNG named after the test, kept after it."""
    test = re.sub(r"[^\w.-]+", "_", request.node.name)

    def take(page, name: str) -> Path:
        path = screenshots_dir() / f"{test}--{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def browser_page(monkeypatch):
    """A fresh page in the machine's headless Chromium, driven by Playwright."""
    executable = chromium_path()
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    # are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()
            # The ORM calls made while Playwright's loop ran on this thread got database
            # connections of their own (Django keeps connections per context); closed
            # here, or PostgreSQL refuses to drop the test database at the end of the run
            # ("being accessed by other users").
            connections.close_all()


@pytest.fixture
def model_server():
    """A local OpenAI-compatible server for the provider config to point at."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()
