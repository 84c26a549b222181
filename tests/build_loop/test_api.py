import pytest
from django.urls import reverse
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from build_loop.models import Build, BuildStatus, StepStatus
from tests.build_loop.factories import BuildFactory, BuildStepFactory

pytestmark = pytest.mark.django_db

START = "/api/build/start"


def detail_url(build):
    return f"/api/build/{build.pk}"


def cancel_url(build):
    return f"/api/build/{build.pk}/cancel"


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "details" in body["error"]
    return body["error"]


# --- URL names -------------------------------------------------------------------------


def test_url_names_resolve_to_the_spec_paths():
    pk = "8f1c8f9e-0000-4000-8000-000000000000"
    assert reverse("build-start") == "/api/build/start"
    assert reverse("build-list") == "/api/build/"
    assert reverse("build-detail", kwargs={"pk": pk}) == f"/api/build/{pk}"
    assert reverse("build-cancel", kwargs={"pk": pk}) == f"/api/build/{pk}/cancel"


# --- POST /api/build/start -------------------------------------------------------------


def test_start_returns_202_with_id_and_status_url_and_enqueues_on_commit(
    tenant_client, fake_llm, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = tenant_client.post(
            START,
            {"prompt": "  A bicycle shop.  ", "max_iterations": 2, "model": "gpt-4o"},
            format="json",
        )

    assert response.status_code == 202, response.content
    body = response.json()
    build = Build.objects.get(pk=body["id"])
    assert build.tenant == tenant_client.tenant
    assert build.prompt == "A bicycle shop."
    assert build.max_iterations == 2
    assert build.model == "gpt-4o"
    assert body["status"] == "queued"
    assert body["status_url"] == f"http://testserver/api/build/{build.pk}"
    assert response["Location"] == body["status_url"]
    assert body["progress"]["text"] == "step 0 of at most 4"
    assert len(callbacks) == 1
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [str(build.pk)]
    assert task.task_path == "build_loop.tasks.run_build_task"
    assert build.task_id == str(task.id)
    # The web request never runs the loop itself.
    assert fake_llm.calls == []


def test_start_does_not_enqueue_before_the_transaction_commits(
    tenant_client, fake_llm, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = tenant_client.post(START, {"prompt": "A shop."}, format="json")

    assert response.status_code == 202
    assert len(callbacks) == 1
    assert not DBTaskResult.objects.exists()


def test_start_defaults_to_three_iterations(tenant_client, fake_llm):
    response = tenant_client.post(START, {"prompt": "A shop."}, format="json")
    assert response.status_code == 202
    assert Build.objects.get(pk=response.json()["id"]).max_iterations == 3


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x" * 20_001}, "prompt"),
        ({"prompt": "A shop.", "max_iterations": 0}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": -1}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": 11}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": "three"}, "max_iterations"),
        ({"prompt": "A shop.", "model": "m" * 201}, "model"),
        ({"prompt": ["not", "a", "string"]}, "prompt"),
        ({"prompt": "A shop.", "max_iterations": 2.5}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": 10**20}, "max_iterations"),
        (["prompt", "A shop."], "non_field_errors"),
    ],
)
def test_start_rejects_bad_input_with_400_and_creates_nothing(
    tenant_client, fake_llm, payload, field
):
    response = tenant_client.post(START, payload, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]
    assert not Build.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_start_rejects_a_body_that_is_not_json(tenant_client, fake_llm):
    response = tenant_client.post(START, "prompt=x", content_type="application/json")
    assert response.status_code == 400
    assert not Build.objects.exists()


def test_start_returns_409_llm_unavailable_when_the_tenant_has_no_usable_provider(
    tenant_client, fake_llm
):
    fake_llm.available = False
    response = tenant_client.post(START, {"prompt": "A shop."}, format="json")

    assert_error(response, 409, "llm_unavailable")
    assert not Build.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_start_checks_availability_for_the_calling_tenant(tenant_client, fake_llm, monkeypatch):
    seen = []
    original = type(fake_llm).__call__

    def spy(self, tenant_id):
        seen.append(tenant_id)
        return original(self, tenant_id)

    monkeypatch.setattr(type(fake_llm), "__call__", spy)
    tenant_client.post(START, {"prompt": "A shop."}, format="json")
    assert seen == [tenant_client.tenant.pk]


@pytest.mark.parametrize("auth", [None, "Bearer not-a-real-key", "Token abc"])
def test_start_without_a_valid_key_is_401_and_creates_nothing(tenant, fake_llm, auth):
    client = APIClient()
    if auth:
        client.credentials(HTTP_AUTHORIZATION=auth)
    response = client.post(START, {"prompt": "A shop."}, format="json")
    assert response.status_code == 401
    assert not Build.objects.exists()


def test_start_with_a_revoked_key_is_401(tenant, api_key, fake_llm):
    api_key.revoked = True
    api_key.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plain_key}")
    response = client.post(START, {"prompt": "A shop."}, format="json")
    assert response.status_code == 401
    assert not Build.objects.exists()


def test_start_refuses_a_tenant_given_by_the_client(tenant_client, other_tenant, fake_llm):
    # Was ignored (202, the caller's own build); strict input now refuses it (issue 15.16).
    response = tenant_client.post(
        START,
        {"prompt": "A shop.", "tenant": other_tenant.pk, "tenant_id": other_tenant.pk},
        format="json",
    )
    error = assert_error(response, 400, "validation_error")
    assert set(error["details"]) == {"tenant", "tenant_id"}
    assert not Build.objects.filter(tenant=other_tenant).exists()
    assert not Build.objects.exists()


# --- GET /api/build/{id} ---------------------------------------------------------------


def test_detail_shows_the_build_with_its_steps_and_progress(tenant_client):
    build = BuildFactory(
        tenant=tenant_client.tenant, status=BuildStatus.RUNNING, max_iterations=2, iteration=2
    )
    BuildStepFactory(
        build=build,
        position=1,
        name="blueprint",
        status=StepStatus.SUCCEEDED,
        output='{"title": "x"}',
        tokens_used=12,
    )
    BuildStepFactory(build=build, position=2, name="review", status=StepStatus.SUCCEEDED)
    BuildStepFactory(build=build, position=3, name="refine", iteration=2)

    response = tenant_client.get(detail_url(build))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(build.pk)
    assert body["status"] == "running"
    assert body["progress"] == {
        "step": 3,
        "max_steps": 4,
        "iteration": 2,
        "max_iterations": 2,
        "text": "step 3 of at most 4",
    }
    assert [s["name"] for s in body["steps"]] == ["blueprint", "review", "refine"]
    assert body["steps"][0]["tokens_used"] == 12
    assert body["steps"][2]["status"] == "running"
    assert set(body["totals"]) == {
        "tokens_used",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
    }


def test_detail_of_another_tenants_build_is_404(tenant_client, other_tenant):
    build = BuildFactory(tenant=other_tenant)
    assert tenant_client.get(detail_url(build)).status_code == 404


@pytest.mark.parametrize("pk", ["not-a-uuid", "12345", "8f1c8f9e"])
def test_detail_with_a_malformed_id_is_404(tenant_client, pk):
    assert tenant_client.get(f"/api/build/{pk}").status_code == 404


def test_get_on_start_is_405(tenant_client):
    assert tenant_client.get(START).status_code == 405


def test_detail_without_a_key_is_401(tenant):
    build = BuildFactory(tenant=tenant)
    assert APIClient().get(detail_url(build)).status_code == 401


def test_detail_with_a_wrong_key_is_401(tenant):
    build = BuildFactory(tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer wrong.key")
    assert client.get(detail_url(build)).status_code == 401


# --- GET /api/build/ -------------------------------------------------------------------


def test_list_shows_only_the_tenants_builds_newest_first_and_paginated(tenant_client, other_tenant):
    mine = [BuildFactory(tenant=tenant_client.tenant) for _ in range(3)]
    BuildFactory(tenant=other_tenant)

    response = tenant_client.get("/api/build/", {"page_size": 2})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"]
    assert [b["id"] for b in body["results"]] == [str(b.pk) for b in reversed(mine)][:2]
    assert "steps" not in body["results"][0]
    assert body["results"][0]["progress"]["text"] == "step 0 of at most 6"


def test_list_filters_by_status(tenant_client):
    BuildFactory(tenant=tenant_client.tenant, status=BuildStatus.FAILED)
    BuildFactory(tenant=tenant_client.tenant)
    body = tenant_client.get("/api/build/", {"status": "failed"}).json()
    assert [b["status"] for b in body["results"]] == ["failed"]


def test_list_with_an_unknown_status_filter_is_400(tenant_client):
    assert tenant_client.get("/api/build/", {"status": "bogus"}).status_code == 400


def test_list_of_another_tenant_shows_none_of_mine(other_tenant_client, tenant):
    BuildFactory(tenant=tenant)
    body = other_tenant_client.get("/api/build/").json()
    assert body["count"] == 0


def test_list_without_a_key_is_401(db):
    assert APIClient().get("/api/build/").status_code == 401


# --- POST /api/build/{id}/cancel -------------------------------------------------------


@pytest.mark.parametrize("status", [BuildStatus.QUEUED, BuildStatus.RUNNING])
def test_cancel_stops_a_queued_or_running_build(tenant_client, status):
    build = BuildFactory(tenant=tenant_client.tenant, status=status)

    response = tenant_client.post(cancel_url(build))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED
    assert build.finished_at is not None


@pytest.mark.parametrize(
    "status", [BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELLED]
)
def test_cancel_of_a_finished_build_is_409_and_changes_nothing(tenant_client, status):
    build = BuildFactory(tenant=tenant_client.tenant, status=status)

    response = tenant_client.post(cancel_url(build))

    error = assert_error(response, 409, "build_finished")
    assert error["details"] == {"status": status}
    build.refresh_from_db()
    assert build.status == status
    assert build.finished_at is None


def test_cancel_of_another_tenants_build_is_404_and_changes_nothing(tenant_client, other_tenant):
    build = BuildFactory(tenant=other_tenant, status=BuildStatus.RUNNING)

    assert tenant_client.post(cancel_url(build)).status_code == 404
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING


def test_cancel_without_a_key_is_401_and_changes_nothing(tenant):
    build = BuildFactory(tenant=tenant)
    assert APIClient().post(cancel_url(build)).status_code == 401
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED


def test_cancel_with_get_is_405(tenant_client):
    build = BuildFactory(tenant=tenant_client.tenant)
    assert tenant_client.get(cancel_url(build)).status_code == 405
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
