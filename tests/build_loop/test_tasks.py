"""Builds through the real task backend: django-tasks-db and its `db_worker` command."""

import json

import pytest
from django_tasks_db.models import DBTaskResult

from build_loop.models import Build, BuildStatus
from llm_providers.models import UsageLog
from tests.build_loop.fakes import BLUEPRINT, failing_review, passing_review
from tests.support.worker import run_worker_until_idle

START = "/api/build/start"


@pytest.mark.django_db(transaction=True)
def test_a_started_build_is_committed_enqueued_and_run_by_the_db_worker(
    tenant_client, fake_llm, keep_signal_handlers
):
    fake_llm.replies += [
        json.dumps(BLUEPRINT),
        failing_review(),
        json.dumps(BLUEPRINT),
        passing_review(),
    ]

    # No test transaction around the request: on_commit fires for real.
    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    assert response.status_code == 202
    build = Build.objects.get(pk=response.json()["id"])
    task = DBTaskResult.objects.get()
    assert task.status == "READY"
    assert build.task_id == str(task.id)
    assert fake_llm.calls == []

    run_worker_until_idle()

    build.refresh_from_db()
    task.refresh_from_db()
    assert task.status == "SUCCESSFUL", task.traceback
    assert task.return_value == "succeeded"
    assert build.status == BuildStatus.SUCCEEDED
    assert build.steps.count() == 4
    assert (
        UsageLog.objects.for_tenant(build.tenant_id)
        .filter(metadata__build_id=str(build.pk))
        .count()
        == 4
    )
    body = tenant_client.get(response.json()["status_url"]).json()
    assert body["status"] == "succeeded"
    assert body["totals"]["tokens_used"] == build.total_tokens == 400


@pytest.mark.django_db(transaction=True)
def test_a_build_cancelled_before_the_worker_picks_it_up_is_not_run(
    tenant_client, fake_llm, keep_signal_handlers
):
    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    assert tenant_client.post(f"/api/build/{response.json()['id']}/cancel").status_code == 200

    run_worker_until_idle()

    build = Build.objects.get(pk=response.json()["id"])
    assert build.status == BuildStatus.CANCELLED
    assert fake_llm.calls == []
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
