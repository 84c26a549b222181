import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from build_loop import services
from build_loop.models import Build, BuildStatus, StepStatus
from tests.build_loop.factories import BuildFactory, BuildStepFactory
from tests.build_loop.fakes import BLUEPRINT, Reply, passing_review

pytestmark = pytest.mark.django_db

STALE_AFTER = 600


@pytest.fixture(autouse=True)
def stale_after(settings):
    settings.BUILD_STALE_AFTER_SECONDS = STALE_AFTER


def running_build(tenant, heartbeat_age_seconds, **kwargs):
    beat = timezone.now() - timedelta(seconds=heartbeat_age_seconds)
    return BuildFactory(
        tenant=tenant, status=BuildStatus.RUNNING, started_at=beat, heartbeat_at=beat, **kwargs
    )


def test_a_running_build_with_an_old_heartbeat_is_failed_and_keeps_its_steps(tenant):
    build = running_build(tenant, STALE_AFTER + 5)
    done = BuildStepFactory(build=build, position=1, status=StepStatus.SUCCEEDED)
    interrupted = BuildStepFactory(build=build, position=2, name="review")

    assert services.fail_stale_builds() == [build.pk]

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "stale"
    assert build.finished_at is not None
    done.refresh_from_db()
    interrupted.refresh_from_db()
    assert done.status == StepStatus.SUCCEEDED
    assert interrupted.status == StepStatus.FAILED
    assert interrupted.error["type"] == "stale"


def test_a_running_build_with_a_recent_heartbeat_is_left_alone(tenant):
    build = running_build(tenant, STALE_AFTER - 60)
    assert services.fail_stale_builds() == []
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING


def test_queued_and_finished_builds_are_never_considered_stale(tenant):
    old = timezone.now() - timedelta(days=1)
    queued = BuildFactory(tenant=tenant, status=BuildStatus.QUEUED)
    finished = BuildFactory(
        tenant=tenant, status=BuildStatus.SUCCEEDED, started_at=old, heartbeat_at=old
    )
    assert services.fail_stale_builds() == []
    assert Build.objects.get(pk=queued.pk).status == BuildStatus.QUEUED
    assert Build.objects.get(pk=finished.pk).status == BuildStatus.SUCCEEDED


def test_the_threshold_comes_from_the_setting(tenant, settings):
    build = running_build(tenant, 120)
    assert services.fail_stale_builds() == []
    settings.BUILD_STALE_AFTER_SECONDS = 60
    assert services.fail_stale_builds() == [build.pk]


def test_the_management_command_fails_stale_builds(tenant, capsys):
    stale = running_build(tenant, STALE_AFTER * 2)
    fresh = running_build(tenant, 1)

    call_command("fail_stale_builds")

    out = capsys.readouterr().out
    assert f"failed stale build {stale.pk}" in out
    assert "1 stale build(s) failed." in out
    assert Build.objects.get(pk=stale.pk).status == BuildStatus.FAILED
    assert Build.objects.get(pk=fresh.pk).status == BuildStatus.RUNNING


def test_the_worker_reaps_stale_builds_before_running_a_build(tenant, fake_llm):
    stale = running_build(tenant, STALE_AFTER * 2)
    queued = BuildFactory(tenant=tenant)
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]

    assert services.build_process(build_id=str(queued.pk)) == BuildStatus.SUCCEEDED
    assert Build.objects.get(pk=stale.pk).status == BuildStatus.FAILED


def test_a_slow_worker_coming_back_after_being_reaped_stops_without_overwriting(tenant, fake_llm):
    build = BuildFactory(tenant=tenant)

    def worker_is_reaped_meanwhile():
        Build.objects.filter(pk=build.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=STALE_AFTER + 1)
        )
        services.fail_stale_builds()

    fake_llm.replies += [Reply(content=json.dumps(BLUEPRINT), before=worker_is_reaped_meanwhile)]
    services.build_run(build_id=build.pk)

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "stale"
    assert len(fake_llm.calls) == 1
    # The reaped call finished after all: its step is kept as succeeded.
    assert build.steps.get().status == StepStatus.SUCCEEDED


def test_the_heartbeat_is_touched_before_every_call(tenant, fake_llm):
    build = running_build(tenant, 0)
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.QUEUED, heartbeat_at=None)
    beats = []

    def record_heartbeat():
        beats.append(Build.objects.get(pk=build.pk).heartbeat_at)

    fake_llm.replies += [
        Reply(content=json.dumps(BLUEPRINT), before=record_heartbeat),
        Reply(content=passing_review(), before=record_heartbeat),
    ]
    services.build_run(build_id=build.pk)

    assert len(beats) == 2
    assert beats[0] is not None and beats[1] > beats[0]


def test_a_failing_stale_check_does_not_keep_the_build_from_running(tenant, fake_llm, monkeypatch):
    def broken():
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(services, "fail_stale_builds", broken)
    build = BuildFactory(tenant=tenant)
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]

    assert services.build_process(build_id=str(build.pk)) == BuildStatus.SUCCEEDED
