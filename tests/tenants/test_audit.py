"""The audit log (SPEC §15): every change path writes exactly one event, never a secret.

Each test drives one path the way an operator or a tenant's program would (the admin's
forms and actions, the REST API, the management commands) and reads the events back.
"""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test.utils import isolate_apps
from django.urls import reverse

from llm_providers.configs.services import llm_provider_service
from llm_providers.models import ProviderConfig
from tenants import audit
from tenants.context import acting_as
from tenants.models import AuditEvent, Tenant, TenantAPIKey
from tests.factories import ProviderConfigFactory, TenantAPIKeyFactory, TenantFactory

pytestmark = pytest.mark.django_db

OLD_KEY = "sk-test-old-provider-key-AAAA1111"
NEW_KEY = "sk-test-new-provider-key-BBBB2222"
HEADER_TOKEN = "hdr-secret-token-CCCC3333"
CONFIGS = "/api/llm/provider/configs"
EVENTS = "/api/audit/events"


def only_event(**filters) -> AuditEvent:
    events = list(AuditEvent.objects.filter(**filters))
    assert len(events) == 1, [(e.action, e.actor) for e in AuditEvent.objects.all()]
    return events[0]


def all_events_json() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)  # every column of every event


def assert_no_secret(*secrets):
    dump = all_events_json()
    for secret in secrets:
        assert secret not in dump
        assert secret[4:-4] not in dump  # nor a recognisable part of it


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("ops", "", "pw")


@pytest.fixture
def ops_client(client, admin_user):
    client.force_login(admin_user)
    return client


def config_for(tenant, **fields):
    # Factories bypass the services: the config exists without an event.
    return ProviderConfigFactory(tenant=tenant, api_key=OLD_KEY, **fields)


# -- REST API ------------------------------------------------------------------------------
def test_rest_create_writes_one_event_with_the_keys_prefix_and_no_secret(tenant_client):
    response = tenant_client.post(
        "/api/llm/provider/configure",
        {
            "provider": "openai",
            "api_key": NEW_KEY,
            "default_model": "gpt-4o-mini",
            "metadata": {"extra_headers": {"x-api-key": HEADER_TOKEN}, "timeout": 30},
        },
        format="json",
    )
    assert response.status_code == 201
    event = only_event(action="provider_config.create")
    prefix = TenantAPIKey.objects.get(tenant=tenant_client.tenant).prefix
    assert event.actor == f"api_key:{prefix}"
    assert event.tenant_id == tenant_client.tenant.pk
    assert (event.target_type, event.target_id) == ("provider_config", response.json()["id"])
    assert event.ip == "127.0.0.1"
    assert event.changes["default_model"] == [None, "gpt-4o-mini"]
    assert event.changes["metadata.timeout"] == [None, 30]
    assert event.changes["api_key"] == "[changed]"
    assert event.changes["metadata.extra_headers.x-api-key"] == "[changed]"
    assert_no_secret(NEW_KEY, HEADER_TOKEN)


def test_rest_patch_without_a_key_is_one_update_event(tenant_client):
    config = config_for(tenant_client.tenant)
    response = tenant_client.patch(
        f"{CONFIGS}/{config.pk}", {"default_model": "gpt-4o"}, format="json"
    )
    assert response.status_code == 200
    event = only_event()
    assert event.action == "provider_config.update"
    assert event.changes == {"default_model": ["gpt-4o-mini", "gpt-4o"]}
    assert_no_secret(OLD_KEY)


def test_rest_key_replacement_is_one_key_replace_event_without_the_key(tenant_client):
    config = config_for(tenant_client.tenant)
    response = tenant_client.patch(f"{CONFIGS}/{config.pk}", {"api_key": NEW_KEY}, format="json")
    assert response.status_code == 200
    event = only_event()
    assert event.action == "provider_config.key_replace"
    assert event.changes == {"api_key": "[changed]", "api_key_last4": ["1111", "2222"]}
    assert_no_secret(OLD_KEY, NEW_KEY)


def test_rest_activation_is_one_event_naming_the_deactivated_config(tenant_client):
    first = config_for(tenant_client.tenant, is_active=True)
    second = config_for(tenant_client.tenant, is_active=False)
    response = tenant_client.post(f"{CONFIGS}/{second.pk}/activate")
    assert response.status_code == 200
    event = only_event()
    assert (event.action, event.target_id) == ("provider_config.activate", str(second.pk))
    assert event.changes == {"is_active": [False, True], "deactivated": str(first.pk)}


def test_rest_delete_is_one_event_with_what_was_deleted(tenant_client):
    config = config_for(tenant_client.tenant)
    assert tenant_client.delete(f"{CONFIGS}/{config.pk}").status_code == 204
    event = only_event()
    assert (event.action, event.target_id) == ("provider_config.delete", str(config.pk))
    assert event.changes["provider"] == ["openai", None]
    assert event.changes["api_key"] == "[changed]"
    assert_no_secret(OLD_KEY)


def test_a_refused_change_writes_no_event(tenant_client):
    config = config_for(tenant_client.tenant)
    response = tenant_client.patch(
        f"{CONFIGS}/{config.pk}", {"base_url": "http://169.254.169.254/v1"}, format="json"
    )
    assert response.status_code == 400
    assert not AuditEvent.objects.exists()


# -- admin ---------------------------------------------------------------------------------
def change_url(config):
    return reverse("admin:llm_providers_providerconfig_change", args=[config.pk])


def form_data(config, **overrides):
    data = {
        "default_model": config.default_model,
        "base_url": config.base_url,
        "metadata": "{}",
        "api_key": "",
        "active": "on" if config.is_active else "",
    }
    data.update(overrides)
    return data


def test_admin_add_is_one_create_event_by_the_admin_user(ops_client):
    tenant = TenantFactory()
    response = ops_client.post(
        reverse("admin:llm_providers_providerconfig_add"),
        {
            "tenant": tenant.pk,
            "provider": "openai",
            "default_model": "gpt-4o-mini",
            "base_url": "",
            "api_key": NEW_KEY,
            "active": "on",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302
    event = only_event()
    assert (event.action, event.actor, event.tenant_id) == (
        "provider_config.create",
        "admin:ops",
        tenant.pk,
    )
    assert event.ip == "127.0.0.1"
    assert_no_secret(NEW_KEY)


def test_admin_change_records_before_and_after_from_the_database(ops_client):
    config = config_for(TenantFactory())
    response = ops_client.post(change_url(config), form_data(config, default_model="gpt-4o"))
    assert response.status_code == 302
    event = only_event()
    assert (event.action, event.actor) == ("provider_config.update", "admin:ops")
    assert event.changes == {"default_model": ["gpt-4o-mini", "gpt-4o"]}


def test_admin_key_replacement_is_one_key_replace_event(ops_client):
    config = config_for(TenantFactory())
    response = ops_client.post(change_url(config), form_data(config, api_key=NEW_KEY))
    assert response.status_code == 302
    event = only_event()
    assert event.action == "provider_config.key_replace"
    assert event.changes["api_key"] == "[changed]"
    assert_no_secret(OLD_KEY, NEW_KEY)


def test_admin_activation_and_deactivation_are_one_event_each(ops_client):
    tenant = TenantFactory()
    first = config_for(tenant, is_active=True)
    second = config_for(tenant, is_active=False)
    ops_client.post(change_url(second), form_data(second, active="on"))
    event = only_event()
    assert event.action == "provider_config.activate"
    assert event.changes["deactivated"] == str(first.pk)

    second.refresh_from_db()
    ops_client.post(change_url(second), form_data(second, active=""))
    event = only_event(action="provider_config.deactivate")
    assert event.changes == {"is_active": [True, False]}
    assert AuditEvent.objects.count() == 2


def test_admin_delete_and_delete_selected_go_through_the_service(ops_client):
    tenant = TenantFactory()
    one, two, three = (config_for(tenant, is_active=False) for _ in range(3))
    delete = reverse("admin:llm_providers_providerconfig_delete", args=[one.pk])
    assert ops_client.post(delete, {"post": "yes"}).status_code == 302
    ops_client.post(
        reverse("admin:llm_providers_providerconfig_changelist"),
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )
    assert not ProviderConfig.objects.exists()
    deleted = AuditEvent.objects.filter(action="provider_config.delete", actor="admin:ops")
    assert sorted(deleted.values_list("target_id", flat=True)) == sorted(
        str(c.pk) for c in (one, two, three)
    )
    assert AuditEvent.objects.count() == 3


def test_admin_issue_key_action_is_one_event_without_the_key(ops_client):
    tenant = TenantFactory()
    response = ops_client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "issue_api_key", "_selected_action": [tenant.pk]},
        follow=True,
    )
    api_key = TenantAPIKey.objects.get(tenant=tenant)
    shown = [str(m) for m in response.context["messages"]][0]
    plain = shown.split("<code>")[1].split("</code>")[0]
    event = only_event()
    assert (event.action, event.actor, event.target_id) == (
        "tenant_api_key.create",
        "admin:ops",
        api_key.prefix,
    )
    assert_no_secret(plain)


def test_admin_add_key_form_is_one_event(ops_client):
    tenant = TenantFactory()
    ops_client.post(
        reverse("admin:tenants_tenantapikey_add"),
        {"name": "ci", "tenant": tenant.pk, "expiry_date_0": "", "expiry_date_1": ""},
    )
    event = only_event()
    assert (event.action, event.tenant_id) == ("tenant_api_key.create", tenant.pk)
    assert event.changes["name"] == [None, "ci"]


def test_admin_revoke_action_and_revoke_checkbox_are_one_event_each(ops_client):
    first, second = TenantAPIKeyFactory(), TenantAPIKeyFactory()
    ops_client.post(
        reverse("admin:tenants_tenantapikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [first.pk]},
    )
    ops_client.post(
        reverse("admin:tenants_tenantapikey_change", args=[second.pk]),
        {
            "name": second.name,
            "tenant": second.tenant_id,
            "expiry_date_0": "",
            "expiry_date_1": "",
            "revoked": "on",
        },
    )
    second.refresh_from_db()
    assert second.revoked
    events = AuditEvent.objects.filter(action="tenant_api_key.revoke", actor="admin:ops")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(
        [first.prefix, second.prefix]
    )
    assert AuditEvent.objects.count() == 2
    assert_no_secret(first.plain_key, second.plain_key)


def test_admin_tenant_add_change_and_delete_are_one_event_each(ops_client):
    # The tenant page's inlines: its API keys and (llm_providers) its limits.
    inline = {
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "llm_limits-TOTAL_FORMS": "0",
        "llm_limits-INITIAL_FORMS": "0",
    }
    ops_client.post(
        reverse("admin:tenants_tenant_add"),
        {"id": "acme", "name": "Acme", "is_active": "on", **inline},
    )
    ops_client.post(
        reverse("admin:tenants_tenant_change", args=["acme"]), {"name": "Acme", **inline}
    )
    ops_client.post(reverse("admin:tenants_tenant_delete", args=["acme"]), {"post": "yes"})
    assert not Tenant.objects.filter(pk="acme").exists()
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "changes"))
    assert actions == [
        ("tenant.create", {"is_active": [None, True], "name": [None, "Acme"]}),
        ("tenant.update", {"is_active": [True, False]}),
        ("tenant.delete", {"is_active": [False, None], "name": ["Acme", None]}),
    ]
    # The tenant is gone; its history is not.
    assert AuditEvent.objects.filter(tenant_id="acme").count() == 3
    # A tenant created disabled is one event too.
    ops_client.post(reverse("admin:tenants_tenant_add"), {"id": "quiet", "name": "Quiet", **inline})
    event = only_event(tenant_id="quiet")
    assert event.changes == {"is_active": [None, False], "name": [None, "Quiet"]}


# -- management commands -------------------------------------------------------------------
def last_line(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_create_tenant_command_audits_the_tenant_and_its_key():
    key = last_line("create_tenant", "acme", "--name", "Acme")
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.actor, e.tenant_id) for e in events] == [
        ("tenant.create", "command:create_tenant", "acme"),
        ("tenant_api_key.create", "command:create_tenant", "acme"),
    ]
    assert events[0].ip is None
    assert_no_secret(key)


def test_create_api_key_command_is_one_event():
    tenant = TenantFactory()
    key = last_line("create_api_key", tenant.pk, "--expires-in-days", "7")
    event = only_event()
    assert (event.action, event.actor) == ("tenant_api_key.create", "command:create_api_key")
    assert event.changes["expiry_date"][1] is not None
    assert_no_secret(key)


def test_bootstrap_local_audits_the_demo_tenant_and_key():
    out = StringIO()
    call_command("bootstrap_local", stdout=out)
    key = next(
        line.split("API key:")[1].strip()
        for line in out.getvalue().splitlines()
        if "API key:" in line
    )
    assert list(AuditEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("tenant.create", "command:bootstrap_local"),
        ("tenant_api_key.create", "command:bootstrap_local"),
    ]
    assert_no_secret(key)


def test_python_api_changes_are_audited_as_system_or_the_given_actor():
    llm_provider_service.save_provider_config(
        tenant_id="embedded", provider="openai", api_key=NEW_KEY, default_model="m"
    )
    assert list(AuditEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("tenant.create", "system"),
        ("provider_config.create", "system"),
    ]
    config = ProviderConfig.objects.get(tenant_id="embedded")
    with acting_as("command:set_llm_limits"):
        llm_provider_service.update_provider_config(config=config, default_model="n")
    assert AuditEvent.objects.get(action="provider_config.update").actor == (
        "command:set_llm_limits"
    )


# -- the rules of the log ------------------------------------------------------------------
def test_the_event_is_written_in_the_changes_transaction(tenant_client, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("audit storage down")

    monkeypatch.setattr(AuditEvent, "save", fail)
    config = config_for(tenant_client.tenant)
    with pytest.raises(RuntimeError):
        llm_provider_service.update_provider_config(config=config, default_model="other")
    config.refresh_from_db()
    assert config.default_model == "gpt-4o-mini"  # rolled back with the failed event


@pytest.mark.django_db(transaction=True)
def test_record_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="transaction"):
        audit.record("limits.update", target_type="tenant_limits", target_id="t")
    with transaction.atomic():
        event = audit.record("limits.update", tenant="t", target_type="tenant_limits")
    assert event.actor == "system"


def test_events_are_append_only_through_the_orm():
    with transaction.atomic():
        event = audit.record("tenant.update", tenant="t", target_type="tenant", target_id="t")
    with pytest.raises(TypeError):
        AuditEvent.objects.update(actor="someone else")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError):
        event.delete()
    event.actor = "someone else"
    with pytest.raises(TypeError):
        event.save()
    assert AuditEvent.objects.get().actor == "system"


def test_events_are_read_only_in_the_admin(ops_client):
    with transaction.atomic():
        event = audit.record("tenant.update", tenant="t", target_type="tenant", target_id="t")
    assert ops_client.get(reverse("admin:tenants_auditevent_changelist")).status_code == 200
    change = reverse("admin:tenants_auditevent_change", args=[event.pk])
    assert ops_client.get(change).status_code == 200  # a read-only view
    assert ops_client.post(change, {"actor": "x"}).status_code == 403
    delete = reverse("admin:tenants_auditevent_delete", args=[event.pk])
    assert ops_client.post(delete, {"post": "yes"}).status_code == 403
    assert ops_client.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    assert AuditEvent.objects.get().actor == "system"


def test_admin_list_filters_by_tenant_actor_action_and_date(ops_client):
    TenantFactory(id="a"), TenantFactory(id="b")
    with transaction.atomic():
        audit.record("tenant.update", tenant="a", target_type="tenant", actor="admin:x")
        audit.record("tenant.delete", tenant="b", target_type="tenant", actor="command:y")
    changelist = reverse("admin:tenants_auditevent_changelist")
    page = ops_client.get(changelist, {"action": "tenant.delete"})
    assert [e.action for e in page.context["cl"].result_list] == ["tenant.delete"]
    page = ops_client.get(changelist, {"actor": "admin:x"})
    assert [e.action for e in page.context["cl"].result_list] == ["tenant.update"]
    page = ops_client.get(changelist, {"created_at__gte": "2000-01-01 00:00:00+00:00"})
    assert len(page.context["cl"].result_list) == 2
    page = ops_client.get(changelist, {"tenant__id__exact": "b"})
    assert [e.action for e in page.context["cl"].result_list] == ["tenant.delete"]
    filters = {spec.title for spec in page.context["cl"].filter_specs}
    assert {"action", "actor", "created at", "tenant"} <= filters


# -- GET /api/audit/events -----------------------------------------------------------------
def test_a_tenant_sees_its_own_events_only(tenant_client, other_tenant_client):
    mine = config_for(tenant_client.tenant)
    theirs = config_for(other_tenant_client.tenant)
    tenant_client.patch(f"{CONFIGS}/{mine.pk}", {"default_model": "a"}, format="json")
    other_tenant_client.patch(f"{CONFIGS}/{theirs.pk}", {"default_model": "b"}, format="json")

    body = tenant_client.get(EVENTS).json()
    assert body["count"] == 1
    assert [e["target_id"] for e in body["results"]] == [str(mine.pk)]
    assert str(theirs.pk) not in json.dumps(tenant_client.get(EVENTS).json())
    assert other_tenant_client.get(EVENTS).json()["results"][0]["target_id"] == str(theirs.pk)


def test_events_are_paginated_newest_first_and_filterable_by_action(tenant_client):
    config = config_for(tenant_client.tenant)
    for model in ("a", "b", "c"):
        tenant_client.patch(f"{CONFIGS}/{config.pk}", {"default_model": model}, format="json")
    tenant_client.post(f"{CONFIGS}/{config.pk}/activate")  # already active: no event
    tenant_client.patch(f"{CONFIGS}/{config.pk}", {"api_key": NEW_KEY}, format="json")

    page = tenant_client.get(EVENTS, {"page_size": 2}).json()
    assert page["count"] == 4 and page["next"] and len(page["results"]) == 2
    assert page["results"][0]["action"] == "provider_config.key_replace"
    assert page["results"][1]["changes"] == {"default_model": ["b", "c"]}
    filtered = tenant_client.get(EVENTS, {"action": "provider_config.update"}).json()
    assert filtered["count"] == 3
    assert set(filtered["results"][0]) == {
        "id",
        "created_at",
        "actor",
        "action",
        "target_type",
        "target_id",
        "changes",
        "ip",
    }
    assert NEW_KEY not in json.dumps(page)


def test_audit_events_need_a_tenant_key(api_client):
    assert api_client.get(EVENTS).status_code == 401


@isolate_apps("tenants")
def test_an_event_for_a_row_of_another_tenant_model_records_its_primary_key(db):
    # SWITCHYARD_TENANT_MODEL may be a host's own model: its rows are not tenants.Tenant
    # instances (this crashed `create_api_key` in a host project with its own model).
    from django.db import models

    class Organization(models.Model):  # noqa: DJ008
        id = models.CharField(primary_key=True, max_length=64)

        class Meta:
            app_label = "tenants"

    tenant = TenantFactory(id="org-1")
    with transaction.atomic():
        event = audit.record(
            "tenant.update", tenant=Organization(id=tenant.pk), target_type="tenant"
        )
    assert AuditEvent.objects.get(pk=event.pk).tenant_id == "org-1"
