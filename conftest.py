"""Root fixtures shared by every test package."""

import io
import logging
import signal

import pytest
from rest_framework.test import APIClient

from tests.factories import TenantAPIKeyFactory, TenantFactory


@pytest.fixture
def tenant(db):
    return TenantFactory(id="tenant_123", name="Tenant 123")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(id="tenant_other", name="Other tenant")


@pytest.fixture
def api_key(tenant):
    return TenantAPIKeyFactory(tenant=tenant)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def tenant_client(api_key):
    """An API client authenticated as `tenant`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}")
    client.tenant = api_key.tenant
    return client


@pytest.fixture
def other_tenant_client(other_tenant):
    key = TenantAPIKeyFactory(tenant=other_tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plain_key}")
    client.tenant = other_tenant
    return client


@pytest.fixture
def console():
    """What the console log handler writes while the test runs (its filters, its format)."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


@pytest.fixture
def keep_signal_handlers():
    """db_worker installs its own SIGINT/SIGTERM handlers in this process; restore pytest's."""
    from tests.support.worker import WORKER_SIGNALS

    saved = {sig: signal.getsignal(sig) for sig in WORKER_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _fresh_llm_policy_cache():
    """Tenant ids repeat across tests and rolled-back rows send no signals: forget each
    process-wide per-tenant limits entry (llm_providers.limits.policy) between tests."""
    from llm_providers.limits import breaker, policy

    policy.forget()
    breaker.forget_local()
    yield
    policy.forget()
    breaker.forget_local()


@pytest.fixture(autouse=True)
def _usage_writer_stopped():
    """A test's usage rows outside its transaction (transactional tests) go through the
    process's writer thread (llm_providers/usage/writer.py): stop it after the test, so its
    database connection never outlives the test's database state (nor the test database)."""
    yield
    from llm_providers.usage.writer import writer

    writer.stop()
