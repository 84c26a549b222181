"""SSRF check: IPv6 transition forms, malformed hosts and allowlist entries (issue 15, 13)."""

import logging

import pytest

from llm_providers.configs.urlsafety import (
    UnsafeBaseURL,
    allowed_networks,
    check_address,
    embedded_ipv4,
    validate_base_url,
)

CONFIGURE = "/api/llm/provider/configure"
LOCAL = {"provider": "local", "default_model": "m", "activate": False}


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix → 169.254.169.254
        "64:ff9b:1:a9fe:a9:fe00::",  # NAT64 local-use /48 → 169.254.169.254
        "::a9fe:a9fe",  # IPv4-compatible ::169.254.169.254
        "::ffff:0:a9fe:a9fe",  # SIIT
        "2002:a9fe:a9fe::1",  # 6to4
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 obfuscated
    ],
)
def test_metadata_address_inside_an_ipv6_transition_form_is_never_allowed(address, settings):
    settings.LLM_BASE_URL_ALLOWLIST = ["::/0", "0.0.0.0/0"]  # not even when allowlisted

    with pytest.raises(UnsafeBaseURL, match="never allowed"):
        check_address(address)


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::a00:1", "64:ff9b::7f00:1", "::ffff:0:a00:1", "::a00:1", "2002:a00:1::1"],
)
def test_private_ipv4_inside_an_ipv6_transition_form_is_refused(address, settings):
    settings.LLM_BASE_URL_ALLOWLIST = []

    with pytest.raises(UnsafeBaseURL, match="LLM_BASE_URL_ALLOWLIST"):
        check_address(address)


@pytest.mark.parametrize("address", ["fec0::1", "::808:808"])
def test_site_local_and_ipv4_compatible_ranges_are_not_public(address, settings):
    settings.LLM_BASE_URL_ALLOWLIST = []

    with pytest.raises(UnsafeBaseURL, match="LLM_BASE_URL_ALLOWLIST"):
        check_address(address)


def test_nat64_of_a_public_address_is_allowed(settings):
    settings.LLM_BASE_URL_ALLOWLIST = []
    check_address("64:ff9b::808:808")  # 8.8.8.8 through the well-known NAT64 prefix
    check_address("2606:4700:4700::1111")


def test_embedded_ipv4_unwraps_every_transition_form():
    from ipaddress import IPv4Address, IPv6Address

    target = IPv4Address("169.254.169.254")
    for form in ("64:ff9b::a9fe:a9fe", "::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "2002:a9fe:a9fe::"):
        assert target in embedded_ipv4(IPv6Address(form)), form


def test_transition_form_is_refused_when_saved_through_the_api(tenant_client):
    response = tenant_client.post(
        CONFIGURE, {**LOCAL, "base_url": "http://[64:ff9b::a9fe:a9fe]/v1"}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "never allowed" in response.json()["error"]["details"]["base_url"][0]


# -- malformed bracketed hosts (15.11) ---------------------------------------------------
BAD_HOSTS = ["http://[zz::1]/v1", "http://[::1/v1", "http://::1]/v1"]


@pytest.mark.parametrize("url", BAD_HOSTS)
def test_malformed_bracketed_host_is_an_unsafe_url(url):
    with pytest.raises(UnsafeBaseURL):
        validate_base_url(url)


@pytest.mark.parametrize("url", BAD_HOSTS)
def test_malformed_bracketed_host_is_a_400_on_create_and_patch(tenant_client, url):
    created = tenant_client.post(CONFIGURE, {**LOCAL, "base_url": url}, format="json")
    assert created.status_code == 400, created.content
    assert "base_url" in created.json()["error"]["details"]

    ok = tenant_client.post(
        CONFIGURE, {**LOCAL, "base_url": "http://127.0.0.1:9/v1"}, format="json"
    )
    assert ok.status_code == 201, ok.content
    patched = tenant_client.patch(
        f"/api/llm/provider/configs/{ok.json()['id']}", {"base_url": url}, format="json"
    )
    assert patched.status_code == 400, patched.content
    assert "base_url" in patched.json()["error"]["details"]


@pytest.mark.parametrize("url", BAD_HOSTS)
def test_malformed_bracketed_host_is_a_form_error_in_the_admin(admin_client, tenant, url):
    from django.urls import reverse

    response = admin_client.post(
        reverse("admin:llm_providers_providerconfig_add"),
        {
            "tenant": tenant.pk,
            "provider": "local",
            "default_model": "m",
            "base_url": url,
            "metadata": "{}",
        },
    )
    assert response.status_code == 200  # the form again, with an error; not a 500
    assert response.context["adminform"].form.errors.get("base_url")


# -- allowlist entries that are not networks (issue 13) ----------------------------------
def test_host_name_in_the_allowlist_does_not_turn_a_save_into_a_500(
    tenant_client, settings, caplog
):
    settings.LLM_BASE_URL_ALLOWLIST = ["127.0.0.1", "localhost"]

    with caplog.at_level(logging.ERROR, logger="llm_providers.configs.urlsafety"):
        response = tenant_client.post(
            CONFIGURE, {**LOCAL, "base_url": "http://127.0.0.1:9/v1"}, format="json"
        )

    assert response.status_code == 201, response.content
    assert [str(n) for n in allowed_networks()] == ["127.0.0.1/32"]  # the name allows nothing
    assert "localhost" in caplog.text
