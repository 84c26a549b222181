"""Every change of a tenant's limits is one audit event, from the command and the admin."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_set_llm_limits_writes_one_event_per_change_named_after_the_command(tenant):
    call_command("set_llm_limits", tenant.pk, "--rpm", "30", stdout=io.StringIO())
    call_command("set_llm_limits", tenant.pk, "--rpm", "30", stdout=io.StringIO())  # no change
    call_command("set_llm_limits", tenant.pk, "--clear", stdout=io.StringIO())

    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor", "changes"))
    assert [(action, actor) for action, actor, _ in events] == [
        ("tenant_limits.update", "command:set_llm_limits"),
        ("tenant_limits.delete", "command:set_llm_limits"),
    ]
    assert events[0][2] == {"requests_per_minute": [None, 30]}
    assert events[1][2]["requests_per_minute"] == [30, None]


def test_the_tenant_page_limits_inline_writes_one_event_with_the_admin_as_actor(client, tenant):
    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw"))
    response = client.post(
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        {
            "name": tenant.name,
            "is_active": "on",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
            "llm_limits-TOTAL_FORMS": "1",
            "llm_limits-INITIAL_FORMS": "0",
            "llm_limits-0-usd_per_day": "5",
            "llm_limits-0-tenant": tenant.pk,
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    (event,) = AuditEvent.objects.filter(action="tenant_limits.update")
    assert event.actor == "admin:ops"
    assert event.changes == {"usd_per_day": [None, "5"]}
