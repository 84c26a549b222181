import logging
import threading
from unittest.mock import patch

import pytest
from django.db import OperationalError
from django.test import override_settings

from llm_providers.validation import startup
from tests.support.processes import (
    WebServer,
    closed_port_url,
    manage,
    process_env,
    subprocess_database,
    wait_for_validation,
)

GUNICORN_ENV = {"SERVER_SOFTWARE": "gunicorn/27.0.1"}


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["/srv/.venv/bin/gunicorn", "config.wsgi"], GUNICORN_ENV),
        (["/usr/lib/python3/site-packages/gunicorn/__main__.py", "config.wsgi"], GUNICORN_ENV),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}),
        (["manage.py", "runserver", "--noreload"], {}),
        (["/srv/.venv/bin/granian", "config.asgi:application", "--interface", "asginl"], {}),
    ],
)
def test_serving_processes_validate_on_startup(argv, environ):
    with override_settings(LLM_VALIDATE_ON_STARTUP=True, LLM_VALIDATION_MODE="models"):
        assert startup.should_validate_on_startup(argv, environ) is True


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["manage.py", "migrate"], {}),
        (["manage.py", "test"], {}),
        (["manage.py", "makemigrations"], {}),
        (["manage.py", "shell"], {}),
        (["manage.py", "validate_llm_providers"], {}),
        (["manage.py", "db_worker"], {}),
        # runserver's autoreloader parent only watches files.
        (["manage.py", "runserver"], {}),
        # A command started from inside a gunicorn worker inherits SERVER_SOFTWARE.
        (["manage.py", "migrate"], GUNICORN_ENV),
        (["/srv/.venv/bin/pytest"], {}),
        (["/srv/.venv/bin/granian-helper"], {}),
        ([], {}),
    ],
)
def test_commands_never_validate_on_startup(argv, environ):
    with override_settings(LLM_VALIDATE_ON_STARTUP=True, LLM_VALIDATION_MODE="models"):
        assert startup.should_validate_on_startup(argv, environ) is False


def test_setting_off_disables_startup_validation():
    with override_settings(LLM_VALIDATE_ON_STARTUP=False):
        assert not startup.should_validate_on_startup(["gunicorn", "x"], GUNICORN_ENV)


def test_mode_off_disables_startup_validation():
    with override_settings(LLM_VALIDATE_ON_STARTUP=True, LLM_VALIDATION_MODE="off"):
        assert not startup.should_validate_on_startup(["gunicorn", "x"], GUNICORN_ENV)


def test_starts_one_daemon_thread_per_process_without_waiting_for_it(monkeypatch):
    release = threading.Event()
    finished = threading.Event()

    def body():
        release.wait(10)
        finished.set()

    monkeypatch.setattr(startup, "run_startup_validation", body)
    monkeypatch.setattr(startup, "STARTED", startup.OncePerProcess())
    with override_settings(LLM_VALIDATE_ON_STARTUP=True, LLM_VALIDATION_MODE="models"):
        thread = startup.maybe_start_validation(["gunicorn", "x"], GUNICORN_ENV)
        again = startup.maybe_start_validation(["gunicorn", "x"], GUNICORN_ENV)

    # Returned while the validation is still blocked: start-up does not wait for it.
    assert thread.daemon and thread.is_alive() and not finished.is_set()
    assert again is None
    release.set()
    thread.join(5)
    assert finished.is_set()


def test_a_failure_to_start_never_crashes_startup(monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("no threads left")

    monkeypatch.setattr(startup, "should_validate_on_startup", explode)

    assert startup.maybe_start_validation() is None
    assert "could not start" in caplog.text


def test_background_run_logs_instead_of_raising(caplog):
    with (
        patch("llm_providers.validation.run_llm_startup_validation", side_effect=RuntimeError),
        patch.object(startup, "wait_for_database", return_value=True),
        patch.object(startup, "claim_run", return_value=True),
        caplog.at_level(logging.WARNING),
    ):
        startup.run_startup_validation()

    assert "LLM provider validation failed" in caplog.text


def test_background_run_skips_quietly_when_tables_are_missing(caplog):
    with (
        patch(
            "llm_providers.validation.run_llm_startup_validation",
            side_effect=OperationalError("no such table: llm_provider_configs"),
        ),
        patch.object(startup, "wait_for_database", return_value=True),
        patch.object(startup, "claim_run", return_value=True),
        caplog.at_level(logging.WARNING),
    ):
        startup.run_startup_validation()

    assert "skipped: database error (OperationalError)" in caplog.text


def test_background_run_gives_up_when_the_database_never_answers(caplog):
    with (
        patch("llm_providers.validation.run_llm_startup_validation") as run,
        patch.object(startup, "wait_for_database", return_value=False),
        caplog.at_level(logging.WARNING),
    ):
        startup.run_startup_validation()

    run.assert_not_called()
    assert "database is not reachable" in caplog.text


def test_processes_sharing_a_cache_validate_once_per_interval():
    from django.core.cache import cache

    cache.delete(startup.LOCK_KEY)
    try:
        assert startup.claim_run() is True
        assert startup.claim_run() is False
    finally:
        cache.delete(startup.LOCK_KEY)


# -- a real serving process ----------------------------------------------------------------
# The helpers are shared with the complete-flow tests (tests/integration/).


def test_the_server_validates_in_the_background_and_healthz_reports_it(tmp_path, httpserver):
    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": []})
    with subprocess_database(tmp_path) as database_url:
        env = process_env(database_url, tmp_path, LLM_VALIDATE_ON_STARTUP="true")
        migrate = manage(env, "migrate", "--noinput")
        seeded = manage(
            env,
            "shell",
            "-c",
            "from llm_providers.services import llm_provider_service as s\n"
            f"s.save_provider_config(tenant_id='tenant_up', provider='local', default_model='m',"
            f" base_url='{httpserver.url_for('/v1')}', api_key='sk-test-fake-key-0006')\n"
            f"s.save_provider_config(tenant_id='tenant_down', provider='local', default_model='m',"
            f" base_url='{closed_port_url()}')\n",
        )
        # Neither command validated anything.
        for completed in (migrate, seeded):
            assert "LLM provider" not in completed.stdout + completed.stderr

        server = WebServer(env, tmp_path / "server.log")
        try:
            server.start()
            body = wait_for_validation(server.base_url, server.process)
        finally:
            server.stop()

    validation = body["checks"]["validation"]
    assert body["status"] == "degraded"
    assert (validation["reachable"], validation["unreachable"], validation["total"]) == (1, 1, 2)
    output = server.log()
    warnings = [line for line in output.splitlines() if "WARNING llm_providers.validation" in line]
    assert len(warnings) == 1
    assert "unreachable: provider=local tenant=tenant_down" in warnings[0]
    assert "sk-test-fake-key-0006" not in output
    assert [request.path for request, _ in httpserver.log] == ["/v1/models"]
