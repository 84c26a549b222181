"""A real web server (scripts/serve-web.sh) on its own migrated database, for socket tests.

One server per module: the tests only read from it, and starting one (migrations
included) costs seconds.
"""

import pytest

from tests.support.processes import WebServer, manage, process_env, subprocess_database

# Short enough that a test sees the server close a trickling connection quickly.
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("server")
    with subprocess_database(tmp_path) as database_url:
        env = process_env(
            database_url,
            tmp_path,
            SERVER_HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT,
            SERVER_MAX_BODY_BYTES=256 * 1024,
            SERVER_BODY_TIMEOUT_SECONDS=BODY_TIMEOUT,
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        web = WebServer(env, tmp_path / "server.log").start()
        try:
            yield web
        finally:
            web.stop()


@pytest.fixture
def fresh_gateway(settings):
    """In-process ASGI tests of /v1 (tests/support/asgi.py): no retries, no environment
    fallback, the gateway's caches and /healthz's results empty before and after, and the
    pooled threads' database connections closed at the end."""
    from llm_providers import health
    from llm_providers.gateway import cache
    from tests.support.asgi import close_thread_connections

    health.monitor.stop()  # no /healthz result from before this test
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_DEFAULT_PROVIDER = ""
    cache.clear()
    yield
    cache.clear()
    close_thread_connections()


@pytest.fixture
def provider(httpserver, tenant):
    """pytest-httpserver as the tenant's `local` provider (LOCAL_MODEL) for the in-process
    ASGI tests; a module with another provider defines its own `provider`."""
    from tests.factories import ProviderConfigFactory
    from tests.support.asgi import LOCAL_MODEL

    ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        default_model=LOCAL_MODEL,
        base_url=httpserver.url_for("/v1").rstrip("/"),
        api_key="sk-local-test-0001",
    )
    return httpserver
