"""Builds in the admin as operators need them (issue 12.6): cancel, no delete while running,
refreshing while running, readable blueprint and steps."""

import json

import pytest
from django.urls import reverse

from build_loop.models import Build, BuildStatus, StepStatus
from tests.build_loop.factories import BuildFactory, BuildStepFactory
from tests.build_loop.fakes import BLUEPRINT

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:build_loop_build_changelist")


def change_url(build):
    return reverse("admin:build_loop_build_change", args=[build.pk])


def cancel_url(build):
    return reverse("admin:build_loop_build_cancel", args=[build.pk])


@pytest.mark.parametrize("status", [BuildStatus.QUEUED, BuildStatus.RUNNING])
def test_an_active_build_has_a_cancel_button_that_cancels_it(admin_client, tenant, status):
    build = BuildFactory(tenant=tenant, status=status)
    page = admin_client.get(change_url(build)).content.decode()
    assert f'action="{cancel_url(build)}"' in page
    assert 'id="cancel-build"' in page

    response = admin_client.post(cancel_url(build), follow=True)

    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED
    assert build.finished_at is not None
    assert "The build was cancelled." in response.content.decode()
    assert 'id="cancel-build"' not in response.content.decode()


def test_cancel_is_a_post_and_a_finished_build_is_left_alone(admin_client, tenant):
    build = BuildFactory(tenant=tenant, status=BuildStatus.SUCCEEDED)
    assert admin_client.get(cancel_url(build)).status_code == 405
    assert 'id="cancel-build"' not in admin_client.get(change_url(build)).content.decode()

    response = admin_client.post(cancel_url(build), follow=True)

    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED
    assert "already finished" in response.content.decode()


def test_the_cancel_action_cancels_the_active_builds_selected(admin_client, tenant):
    running = BuildFactory(tenant=tenant, status=BuildStatus.RUNNING)
    queued = BuildFactory(tenant=tenant, status=BuildStatus.QUEUED)
    failed = BuildFactory(tenant=tenant, status=BuildStatus.FAILED)

    response = admin_client.post(
        CHANGELIST,
        {"action": "cancel_builds", "_selected_action": [running.pk, queued.pk, failed.pk]},
        follow=True,
    )

    assert "Cancelled 2 build(s)." in response.content.decode()
    statuses = dict(Build.objects.values_list("pk", "status"))
    assert statuses == {
        running.pk: BuildStatus.CANCELLED,
        queued.pk: BuildStatus.CANCELLED,
        failed.pk: BuildStatus.FAILED,
    }


def test_a_running_build_cannot_be_deleted(admin_client, tenant):
    running = BuildFactory(tenant=tenant, status=BuildStatus.RUNNING)
    delete = reverse("admin:build_loop_build_delete", args=[running.pk])

    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert delete not in admin_client.get(change_url(running)).content.decode()
    assert Build.objects.filter(pk=running.pk).exists()


def test_delete_selected_refuses_a_selection_with_an_active_build(admin_client, tenant):
    running = BuildFactory(tenant=tenant, status=BuildStatus.RUNNING)
    done = BuildFactory(tenant=tenant, status=BuildStatus.SUCCEEDED)
    selection = {"action": "delete_selected", "_selected_action": [running.pk, done.pk]}

    confirm = admin_client.post(CHANGELIST, selection).content.decode()
    assert "permission to delete the following types of objects" in confirm
    assert admin_client.post(CHANGELIST, {**selection, "post": "yes"}).status_code == 403
    assert Build.objects.count() == 2

    # A finished build alone is deleted as usual.
    admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [done.pk], "post": "yes"}
    )
    assert list(Build.objects.values_list("pk", flat=True)) == [running.pk]


def test_a_running_builds_page_refreshes_itself_and_a_finished_one_does_not(admin_client, tenant):
    running = BuildFactory(tenant=tenant, status=BuildStatus.RUNNING)
    done = BuildFactory(tenant=tenant, status=BuildStatus.FAILED)

    assert '<meta http-equiv="refresh" content="5">' in (
        admin_client.get(change_url(running)).content.decode()
    )
    assert 'http-equiv="refresh"' not in admin_client.get(change_url(done)).content.decode()


def test_the_blueprint_and_steps_are_pretty_printed_and_collapsible(admin_client, tenant):
    build = BuildFactory(
        tenant=tenant,
        status=BuildStatus.SUCCEEDED,
        blueprint=BLUEPRINT,
        blueprint_text=json.dumps(BLUEPRINT),
    )
    BuildStepFactory(
        build=build,
        position=1,
        status=StepStatus.FAILED,
        output="line one\nline two",
        parsed={"passed": False, "issues": ["Payments are missing."]},
        error={"type": "timeout", "message": "No answer"},
    )

    page = admin_client.get(change_url(build)).content.decode()

    # Indented JSON, one key per line, in a <details> block that can be closed.
    pretty = json.dumps(BLUEPRINT, indent=2).replace('"', "&quot;")
    assert '<details class="json-block" id="blueprint" open>' in page
    assert pretty in page
    assert '<pre class="text-block">line one\nline two</pre>' in page
    assert "&quot;issues&quot;: [\n    &quot;Payments are missing.&quot;" in page
    assert "&quot;type&quot;: &quot;timeout&quot;" in page
