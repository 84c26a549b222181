from django.urls import reverse

from tenants.models import TenantAPIKey
from tests.factories import TenantAPIKeyFactory, TenantFactory


def test_issue_api_key_action_shows_the_new_key_once(admin_client):
    tenant = TenantFactory(id="tenant_123")
    response = admin_client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "issue_api_key", "_selected_action": [tenant.pk]},
        follow=True,
    )
    assert response.status_code == 200
    api_key = TenantAPIKey.objects.get(tenant=tenant)
    page = response.content.decode()
    shown = page.split("<code>")[1].split("</code>")[0]
    assert shown.startswith(api_key.prefix + ".")
    assert TenantAPIKey.objects.get_from_key(shown) == api_key
    # The next page view does not show it again.
    again = admin_client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert shown not in again


def test_tenant_page_lists_keys_without_secrets(admin_client):
    key = TenantAPIKeyFactory(tenant=TenantFactory(id="tenant_123"))
    page = admin_client.get(reverse("admin:tenants_tenant_change", args=["tenant_123"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert key.prefix in html
    assert key.plain_key not in html
    assert key.plain_key.split(".", 1)[1] not in html


def test_revoke_action_revokes_keys(admin_client):
    key = TenantAPIKeyFactory()
    admin_client.post(
        reverse("admin:tenants_tenantapikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [key.pk]},
        follow=True,
    )
    key.refresh_from_db()
    assert key.revoked is True


def test_adding_a_key_in_the_admin_shows_it_once(admin_client):
    tenant = TenantFactory(id="tenant_123")
    response = admin_client.post(
        reverse("admin:tenants_tenantapikey_add"),
        {"name": "ci", "tenant": tenant.pk, "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    api_key = TenantAPIKey.objects.get(tenant=tenant)
    assert f"is: {api_key.prefix}." in response.content.decode()
