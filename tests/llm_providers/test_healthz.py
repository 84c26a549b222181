import json
from unittest.mock import patch

import pytest
from django.core.cache import cache
from django.db import OperationalError, connections
from django.test import override_settings

from llm_providers.validation import run_llm_startup_validation
from tests.factories import ProviderConfigFactory, TenantFactory
from tests.support.wire import base_url, closed_port_url

FAKE_KEY = "sk-test-fake-key-0002"
MODELS_REPLY = {"object": "list", "data": [{"id": "local-model"}]}


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def local_config(url, tenant):
    return ProviderConfigFactory(
        tenant=tenant, provider="local", base_url=url, default_model="m", api_key=FAKE_KEY
    )


def test_is_ok_without_credentials_before_any_validation(db, client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["validation"] == {"status": "not_run"}


def test_reports_the_latest_validation_as_counts(db, client, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream), TenantFactory(id="acme", name="Acme Secret Corp"))
    run_llm_startup_validation(timeout=5)

    validation = client.get("/healthz").json()["checks"]["validation"]

    assert validation["status"] == "ok"
    assert validation["reachable"] == 1
    assert validation["unreachable"] == 0
    assert validation["unusable"] == 0
    assert validation["total"] == 1
    assert validation["mode"] == "models"
    assert validation["ran_at"] and isinstance(validation["duration_ms"], int)


def test_is_degraded_when_a_provider_is_not_usable_and_names_nobody(db, client, upstream):
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream), TenantFactory(id="acme", name="Acme Secret Corp"))
    local_config(closed_port_url(), TenantFactory(id="globex", name="Globex Hidden"))
    run_llm_startup_validation(timeout=5)

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["validation"]["unreachable"] == 1
    text = response.content.decode()
    for secret in ("acme", "Acme Secret", "globex", "Globex", FAKE_KEY, "0002"):
        assert secret not in text


def test_is_503_fail_when_the_database_is_down(db, client):
    refuse = OperationalError("could not connect to server")

    with patch.object(connections["default"], "cursor", side_effect=refuse):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert "could not connect" not in response.content.decode()


def test_stays_up_when_the_cache_is_down(db, client, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(cache, "get", broken)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["validation"]["status"] == "not_run"


def test_is_not_redirected_to_https(db, client):
    with override_settings(SECURE_SSL_REDIRECT=True):
        assert client.get("/admin/login/").status_code == 301
        assert client.get("/healthz").status_code == 200


def test_is_never_cached(db, client):
    assert "no-cache" in client.get("/healthz")["Cache-Control"]


def test_refuses_writes(db, client):
    response = client.post("/healthz", data=json.dumps({}), content_type="application/json")

    assert response.status_code == 405


def test_a_disabled_tenant_does_not_make_it_degraded(db, client, upstream):
    # Bug B1: a disabled tenant's config was validated and counted "unusable".
    upstream.expect_request("/v1/models").respond_with_json(MODELS_REPLY)
    local_config(base_url(upstream), TenantFactory())
    local_config(base_url(upstream), TenantFactory(is_active=False))
    run_llm_startup_validation(timeout=5)

    body = client.get("/healthz").json()

    assert body["status"] == "ok"
    assert body["checks"]["validation"]["unusable"] == 0
    assert body["checks"]["validation"]["total"] == 1
