"""POST configure, GET/PATCH/DELETE configs/{id}, GET configs, POST configs/{id}/activate."""

import pytest

from llm_providers.configs.services import decrypted_api_key
from llm_providers.models import ProviderConfig
from tests.factories import ProviderConfigFactory

from .api_support import (
    FAKE_KEY,
    OTHER_FAKE_KEY,
    assert_error,
    make_key_undecryptable,
    raw_post,
)

pytestmark = pytest.mark.django_db

CONFIGURE = "/api/llm/provider/configure"
CONFIGS = "/api/llm/provider/configs"
VALID = {"provider": "openai", "api_key": FAKE_KEY, "default_model": "gpt-4o-mini"}


def detail(config):
    return f"{CONFIGS}/{config.pk}"


def state(config):
    """Everything a request could change about a config, the key included."""
    config = ProviderConfig.objects.get(pk=config.pk)
    return (
        config.default_model,
        config.base_url,
        config.is_active,
        config.metadata,
        config.api_key_last4,
        decrypted_api_key(config),
        config.updated_at,
    )


# -- POST /api/llm/provider/configure ----------------------------------------------------------
@pytest.mark.usefixtures("no_network")
def test_configure_creates_an_active_config_and_returns_it_with_the_key_masked(tenant_client):
    response = tenant_client.post(CONFIGURE, VALID, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert FAKE_KEY not in response.content.decode()
    assert "api_key" not in body and "api_key_encrypted" not in body
    assert body["api_key_last4"] == "0001"
    assert body["api_key_masked"] == "****0001"
    assert body["key_status"] == "ok"
    assert body["is_active"] is True
    assert response["Location"] == f"{CONFIGS}/{body['id']}"
    config = ProviderConfig.objects.get(pk=body["id"])
    assert config.tenant_id == tenant_client.tenant.pk
    assert decrypted_api_key(config) == FAKE_KEY


def test_configure_deactivates_the_previous_active_config(tenant_client):
    old = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    response = tenant_client.post(CONFIGURE, VALID, format="json")
    assert response.status_code == 201
    old.refresh_from_db()
    assert old.is_active is False


def test_configure_with_activate_false_keeps_the_current_active_config(tenant_client):
    old = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    response = tenant_client.post(CONFIGURE, {**VALID, "activate": False}, format="json")
    assert response.status_code == 201
    assert response.json()["is_active"] is False
    old.refresh_from_db()
    assert old.is_active is True


def test_configure_accepts_a_local_server_on_loopback_without_a_key(tenant_client):
    body = {"provider": "local", "default_model": "llama", "base_url": "http://127.0.0.1:8080/v1/"}
    response = tenant_client.post(CONFIGURE, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["base_url"] == "http://127.0.0.1:8080/v1"
    assert response.json()["key_status"] == "missing"


def test_configure_never_takes_the_tenant_from_the_client(tenant_client, other_tenant):
    response = tenant_client.post(CONFIGURE, {**VALID, "tenant_id": other_tenant.pk}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {"tenant_id": ["Unknown field."]}
    assert not ProviderConfig.objects.exists()


def test_configure_refuses_an_unknown_provider(tenant_client):
    response = tenant_client.post(CONFIGURE, {**VALID, "provider": "openia"}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "provider" in error["details"]
    assert not ProviderConfig.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider", 123),
        ("provider", None),
        ("default_model", 123),
        ("default_model", ["gpt-4o"]),
        ("default_model", ""),
        ("default_model", "m" * 201),
        ("default_model", "gpt\n4o"),
        ("api_key", 12345678),
        ("api_key", "sk-test with spaces"),
        ("api_key", "sk-test-fake\r\nX-Injected: 1"),
        ("base_url", 5),
        ("base_url", "ftp://example.test/"),
        ("base_url", "http://" + "a" * 500 + ".test/"),
        ("activate", "yes"),
        ("activate", 1),
        ("metadata", ["a", "b"]),
        ("metadata", "{}"),
        ("metadata", {"note": "nul\u0000byte"}),
        ("metadata", {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {}}}}}}}}}}}),
    ],
)
@pytest.mark.usefixtures("no_network")
def test_configure_refuses_wrong_types_and_values_with_400_and_creates_nothing(
    tenant_client, field, value
):
    response = tenant_client.post(CONFIGURE, {**VALID, field: value}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert field in error["details"], error
    assert not ProviderConfig.objects.exists()


@pytest.mark.parametrize("missing", ["provider", "default_model"])
def test_configure_requires_provider_and_model(tenant_client, missing):
    body = {k: v for k, v in VALID.items() if k != missing}
    error = assert_error(tenant_client.post(CONFIGURE, body, format="json"), 400)
    assert missing in error["details"]


def test_configure_requires_a_key_for_hosted_providers(tenant_client):
    body = {"provider": "anthropic", "default_model": "claude-3-5-haiku-latest"}
    error = assert_error(tenant_client.post(CONFIGURE, body, format="json"), 400)
    assert "api_key" in error["details"]
    assert not ProviderConfig.objects.exists()


def test_configure_requires_a_base_url_for_local(tenant_client):
    body = {"provider": "local", "default_model": "llama"}
    error = assert_error(tenant_client.post(CONFIGURE, body, format="json"), 400)
    assert "base_url" in error["details"]


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/",
        "http://192.168.1.10:8080/v1",
        "http://[fe80::1]/v1",
        "http://[::ffff:169.254.169.254]/",
        "http://100.100.100.200/",
        "http://user:pass@api.openai.test/v1",
    ],
)
@pytest.mark.usefixtures("no_network")
def test_configure_refuses_unsafe_base_urls_and_creates_nothing(tenant_client, base_url):
    response = tenant_client.post(CONFIGURE, {**VALID, "base_url": base_url}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "base_url" in error["details"]
    assert not ProviderConfig.objects.exists()


# -- GET /api/llm/provider/configs ---------------------------------------------------------
def test_list_shows_only_the_tenants_configs_paginated_and_without_keys(
    tenant_client, other_tenant
):
    mine = [ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False) for _ in range(3)]
    ProviderConfigFactory(tenant=other_tenant, api_key=OTHER_FAKE_KEY)
    response = tenant_client.get(CONFIGS, {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"] is not None
    page2 = tenant_client.get(CONFIGS, {"page_size": 2, "page": 2}).json()
    ids = {r["id"] for r in body["results"] + page2["results"]}
    assert ids == {str(c.pk) for c in mine}
    assert "sk-test-" not in response.content.decode()


def test_list_beyond_the_last_page_is_404(tenant_client):
    assert_error(tenant_client.get(CONFIGS, {"page": 99}), 404, "not_found")


def test_list_does_one_query_for_the_page_and_one_for_the_count(
    tenant_client, django_assert_max_num_queries
):
    for _ in range(5):
        ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False)
    # authentication (key + tenant in one query) + count + page
    with django_assert_max_num_queries(4):
        assert tenant_client.get(CONFIGS).status_code == 200


# -- GET /api/llm/provider/configs/{id} ---------------------------------------------------
def test_retrieve_returns_the_config_without_its_key(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    response = tenant_client.get(detail(config))
    assert response.status_code == 200
    assert response.json()["id"] == str(config.pk)
    assert FAKE_KEY not in response.content.decode()


def test_retrieve_flags_an_undecryptable_key(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    make_key_undecryptable(config)
    response = tenant_client.get(detail(config))
    assert response.status_code == 200
    assert response.json()["key_status"] == "undecryptable"
    assert "gAAAA" not in response.content.decode()


def test_retrieve_redacts_credentials_in_metadata(tenant_client):
    config = ProviderConfigFactory(
        tenant=tenant_client.tenant,
        metadata={"timeout": 30, "extra_headers": {"X-Api-Key": "hdr-secret-value-77"}},
    )
    body = tenant_client.get(detail(config)).json()
    assert body["metadata"] == {"timeout": 30, "extra_headers": {"X-Api-Key": "****"}}


def test_patching_back_redacted_metadata_keeps_the_stored_credentials(tenant_client):
    config = ProviderConfigFactory(
        tenant=tenant_client.tenant,
        metadata={"timeout": 30, "headers": {"X-Api-Key": "hdr-secret-value-77"}},
    )
    shown = tenant_client.get(detail(config)).json()["metadata"]
    shown["timeout"] = 10
    response = tenant_client.patch(detail(config), {"metadata": shown}, format="json")
    assert response.status_code == 200
    config.refresh_from_db()
    assert config.metadata == {"timeout": 10, "headers": {"X-Api-Key": "hdr-secret-value-77"}}
    assert "hdr-secret-value-77" not in response.content.decode()


def test_retrieve_of_another_tenants_config_is_404(tenant_client, other_tenant):
    theirs = ProviderConfigFactory(tenant=other_tenant)
    assert_error(tenant_client.get(detail(theirs)), 404, "not_found")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_retrieve_of_an_unknown_id_is_404(tenant_client, bad_id):
    assert_error(tenant_client.get(f"{CONFIGS}/{bad_id}"), 404, "not_found")


# -- PATCH /api/llm/provider/configs/{id} --------------------------------------------------
def test_patch_changes_the_given_fields_and_keeps_the_key(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    response = tenant_client.patch(
        detail(config), {"default_model": "gpt-4o", "metadata": {"timeout": 5}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["default_model"] == "gpt-4o"
    config.refresh_from_db()
    assert config.default_model == "gpt-4o"
    assert config.metadata == {"timeout": 5}
    assert decrypted_api_key(config) == FAKE_KEY


@pytest.mark.parametrize("blank", ["", None])
def test_patch_with_a_blank_key_keeps_the_stored_key(tenant_client, blank):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    response = tenant_client.patch(detail(config), {"api_key": blank}, format="json")
    assert response.status_code == 200, response.content
    config.refresh_from_db()
    assert decrypted_api_key(config) == FAKE_KEY


def test_patch_replaces_the_key_and_never_echoes_it(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant, api_key=FAKE_KEY)
    response = tenant_client.patch(detail(config), {"api_key": OTHER_FAKE_KEY}, format="json")
    assert response.status_code == 200
    assert OTHER_FAKE_KEY not in response.content.decode()
    assert response.json()["api_key_last4"] == "0002"
    config.refresh_from_db()
    assert decrypted_api_key(config) == OTHER_FAKE_KEY


@pytest.mark.usefixtures("no_network")
def test_patch_of_another_tenants_config_is_404_and_changes_nothing(tenant_client, other_tenant):
    theirs = ProviderConfigFactory(tenant=other_tenant, api_key=OTHER_FAKE_KEY)
    before = state(theirs)
    response = tenant_client.patch(
        detail(theirs), {"default_model": "stolen", "api_key": FAKE_KEY}, format="json"
    )
    assert_error(response, 404, "not_found")
    assert state(theirs) == before


@pytest.mark.parametrize("base_url", ["http://169.254.169.254/", "http://10.0.0.5/"])
def test_patch_refuses_unsafe_base_urls_and_changes_nothing(tenant_client, base_url):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    before = state(config)
    response = tenant_client.patch(detail(config), {"base_url": base_url}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "base_url" in error["details"]
    assert state(config) == before


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "anthropic"},
        {"is_active": False},
        {"default_model": 7},
        {"default_model": ""},
        {"metadata": [1]},
        {"api_key": "has space"},
    ],
)
def test_patch_refuses_bad_input_and_changes_nothing(tenant_client, body):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    before = state(config)
    response = tenant_client.patch(detail(config), body, format="json")
    assert_error(response, 400, "validation_error")
    assert state(config) == before


def test_patch_with_malformed_json_is_400(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    response = raw_post(tenant_client, detail(config), "{nope", method="patch")
    assert_error(response, 400, "parse_error")


def test_patch_with_a_non_json_body_is_415(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    response = raw_post(tenant_client, detail(config), "default_model=x", "text/plain", "patch")
    assert_error(response, 415, "unsupported_media_type")


def test_patch_with_an_oversized_body_is_413(tenant_client, settings):
    settings.API_MAX_BODY_BYTES = 100
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    before = state(config)
    body = '{"default_model": "%s"}' % ("m" * 150)
    assert_error(raw_post(tenant_client, detail(config), body, method="patch"), 413)
    assert state(config) == before


# -- DELETE /api/llm/provider/configs/{id} -------------------------------------------------
def test_delete_removes_the_config(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    response = tenant_client.delete(detail(config))
    assert response.status_code == 204
    assert not ProviderConfig.objects.filter(pk=config.pk).exists()


def test_delete_of_another_tenants_config_is_404_and_keeps_it(tenant_client, other_tenant):
    theirs = ProviderConfigFactory(tenant=other_tenant)
    assert_error(tenant_client.delete(detail(theirs)), 404, "not_found")
    assert ProviderConfig.objects.filter(pk=theirs.pk).exists()


# -- POST /api/llm/provider/configs/{id}/activate ------------------------------------------
def test_activate_makes_the_config_active_and_deactivates_the_other(tenant_client):
    current = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    other = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=False)
    response = tenant_client.post(f"{detail(other)}/activate")
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    current.refresh_from_db()
    other.refresh_from_db()
    assert (current.is_active, other.is_active) == (False, True)


def test_activate_of_another_tenants_config_is_404_and_changes_nothing(tenant_client, other_tenant):
    mine = ProviderConfigFactory(tenant=tenant_client.tenant, is_active=True)
    theirs = ProviderConfigFactory(tenant=other_tenant, is_active=False)
    assert_error(tenant_client.post(f"{detail(theirs)}/activate"), 404, "not_found")
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.is_active, theirs.is_active) == (True, False)


def test_get_on_activate_is_405(tenant_client):
    config = ProviderConfigFactory(tenant=tenant_client.tenant)
    assert_error(tenant_client.get(f"{detail(config)}/activate"), 405, "method_not_allowed")
