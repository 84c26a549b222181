import pytest

from tests.browser import conftest


def test_a_missing_chromium_fails_loudly_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("CI", "true")  # under CI a missing browser is a failure
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    monkeypatch.setattr(conftest.os.path, "isfile", lambda path: False)
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)

    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        conftest.chromium_path()


def test_chromium_path_can_be_overridden(monkeypatch, tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("CHROMIUM_PATH", str(browser))

    assert conftest.chromium_path() == str(browser)


def test_outside_ci_a_missing_chromium_skips_saying_how_to_install_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    monkeypatch.setattr(conftest.os.path, "isfile", lambda path: False)
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)

    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        conftest.chromium_path()
