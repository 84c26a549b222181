import os
import shutil

import pytest
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


def chromium_path() -> str:
    """The machine's own Chromium (Debian's package); tests never download a browser."""
    candidates = [os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium not found at /usr/bin/chromium (or CHROMIUM_PATH): install Debian's "
        "`chromium` package (apt-get install -y chromium). Browser tests never download one.",
        pytrace=False,
    )


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
            page = browser.new_context().new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def model_server():
    """A local OpenAI-compatible server for the provider config to point at."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()
