import pytest
from django.urls import reverse

from build_loop.models import BuildStatus, StepStatus
from tests.build_loop.factories import BuildFactory, BuildStepFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:build_loop_build_changelist"


def test_changelist_shows_progress_step_n_of_at_most_m(admin_client, tenant):
    build = BuildFactory(tenant=tenant, status=BuildStatus.RUNNING, max_iterations=2)
    BuildStepFactory(build=build, position=1)

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "step 1 of at most 4" in page


def test_changelist_filters_by_status(admin_client, tenant):
    failed = BuildFactory(tenant=tenant, status=BuildStatus.FAILED)
    queued = BuildFactory(tenant=tenant, status=BuildStatus.QUEUED)

    page = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()

    assert str(failed.pk) in page
    assert str(queued.pk) not in page


def test_change_page_shows_steps_inline_read_only(admin_client, tenant):
    build = BuildFactory(tenant=tenant, status=BuildStatus.SUCCEEDED)
    BuildStepFactory(
        build=build,
        position=1,
        name="blueprint",
        status=StepStatus.SUCCEEDED,
        output="BLUEPRINT-OUTPUT-MARKER",
    )
    BuildStepFactory(build=build, position=2, name="review", status=StepStatus.SUCCEEDED)

    response = admin_client.get(reverse("admin:build_loop_build_change", args=[build.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "BLUEPRINT-OUTPUT-MARKER" in page
    assert "step 2 of at most 6" in page
    # Nothing on the page can be edited or added.
    assert 'name="steps-0-output"' not in page
    assert 'name="_save"' not in page


def test_builds_cannot_be_added_or_edited_in_the_admin(admin_client, tenant):
    build = BuildFactory(tenant=tenant)
    assert admin_client.get(reverse("admin:build_loop_build_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:build_loop_build_change", args=[build.pk]), {"status": "succeeded"}
    )
    assert response.status_code == 403
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
