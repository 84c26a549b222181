"""The build loop against the real LLMService, over HTTP to a local OpenAI-compatible server.

The provider is `local` pointed at pytest-httpserver on 127.0.0.1, so the whole path runs:
API → on_commit enqueue → django-tasks-db → worker → LLMService → HTTP → usage rows.

The complete flow through the REST API of a real server (configure → test → build →
usage stats, restarts, start-up validation) is in tests/integration/.
"""

import json
import uuid

import pytest
from cryptography.fernet import Fernet
from django.db.models import Sum
from django.test import override_settings
from django_tasks_db.models import DBTaskResult

from build_loop.models import Build, BuildStatus, StepStatus
from llm_providers.models import UsageLog
from tests.build_loop.fakes import BLUEPRINT, REFINED, failing_review, passing_review
from tests.factories import ProviderConfigFactory
from tests.support.processes import manage, process_env, subprocess_database
from tests.support.upstream import MODEL, chat_reply
from tests.support.worker import run_worker_until_idle

START = "/api/build/start"
CHAT = "/v1/chat/completions"


@pytest.fixture
def local_llm(tenant, httpserver, settings):
    """The tenant's active config: a local OpenAI-compatible server on 127.0.0.1."""
    settings.LLM_MAX_RETRIES = 0
    return ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        base_url=httpserver.url_for("/v1").rstrip("/"),
        default_model=MODEL,
        api_key="",
    )


@pytest.mark.django_db(transaction=True)
def test_a_build_runs_through_the_real_service_and_every_call_is_in_the_usage_log(
    tenant_client, local_llm, httpserver, keep_signal_handlers
):
    for content, tokens in [
        (json.dumps(BLUEPRINT), (100, 50)),
        (failing_review(), (80, 10)),
        (json.dumps(REFINED), (120, 60)),
        (passing_review(), (90, 5)),
    ]:
        httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
            chat_reply(content, *tokens)
        )

    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    assert response.status_code == 202
    run_worker_until_idle()

    build = Build.objects.get(pk=response.json()["id"])
    assert build.status == BuildStatus.SUCCEEDED, build.error
    assert build.blueprint == REFINED
    assert build.review_passed is True
    httpserver.check_assertions()
    sent = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert len(sent) == 4
    assert {body["model"] for body in sent} == {MODEL}
    assert all(body["messages"][0]["role"] == "system" for body in sent)
    assert "A bicycle shop." in sent[0]["messages"][-1]["content"]

    rows = UsageLog.objects.for_tenant(tenant_client.tenant).filter(
        metadata__build_id=str(build.pk)
    )
    assert rows.count() == 4
    assert set(rows.values_list("endpoint", flat=True)) == {"completion"}
    assert set(rows.values_list("provider", flat=True)) == {"local"}
    assert sorted(r.metadata["step"] for r in rows) == ["blueprint", "refine", "review", "review"]
    assert set(build.steps.values_list("usage_log_id", flat=True)) == set(
        rows.values_list("pk", flat=True)
    )
    sums = rows.aggregate(
        tokens=Sum("tokens_used"), latency=Sum("latency_ms"), cost=Sum("cost_usd")
    )
    assert build.total_tokens == sums["tokens"] == 515
    assert build.total_latency_ms == sums["latency"]
    assert build.total_cost_usd == sums["cost"]
    body = tenant_client.get(response.json()["status_url"]).json()
    assert body["progress"]["text"] == "step 4 of at most 6"
    assert body["totals"]["tokens_used"] == 515


@pytest.mark.django_db(transaction=True)
def test_a_provider_error_over_http_fails_the_build_with_the_normalised_error(
    tenant_client, local_llm, httpserver, keep_signal_handlers
):
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
        chat_reply(json.dumps(BLUEPRINT))
    )
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
        {
            "error": {
                "message": "Invalid API key provided.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        status=401,
    )

    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    run_worker_until_idle()

    build = Build.objects.get(pk=response.json()["id"])
    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "authentication"
    assert build.error["status_code"] == 401
    assert build.error["message"]
    assert list(build.steps.values_list("name", "status")) == [
        ("blueprint", StepStatus.SUCCEEDED),
        ("review", StepStatus.FAILED),
    ]
    failed_row = build.steps.get(name="review").usage_log
    assert failed_row.success is False
    assert failed_row.error_type == "authentication"
    assert build.blueprint == BLUEPRINT
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"


@pytest.mark.django_db(transaction=True)
def test_the_provider_key_never_reaches_the_build_its_steps_or_the_api(
    tenant_client, httpserver, settings, keep_signal_handlers
):
    settings.LLM_MAX_RETRIES = 0
    key = "sk-test-fake-key-0001"
    ProviderConfigFactory(
        tenant=tenant_client.tenant,
        provider="local",
        default_model=MODEL,
        api_key=key,
        base_url=httpserver.url_for("/v1").rstrip("/"),
    )
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
        {"error": {"message": f"Incorrect API key provided: {key}.", "type": "auth"}},
        status=401,
    )

    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    run_worker_until_idle()

    build = Build.objects.get(pk=response.json()["id"])
    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "authentication"
    stored = json.dumps([build.error, list(build.steps.values("error", "output"))])
    assert key not in stored
    assert key not in tenant_client.get(response.json()["status_url"]).content.decode()
    assert key not in tenant_client.get("/api/build/").content.decode()


@pytest.mark.django_db
def test_start_is_409_llm_unavailable_without_config_or_environment_fallback(
    tenant_client, settings
):
    settings.LLM_DEFAULT_PROVIDER = ""
    settings.LLM_DEFAULT_MODEL = ""
    response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "llm_unavailable"
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_start_is_409_when_the_only_config_has_an_undecryptable_key(tenant_client, settings):
    settings.LLM_DEFAULT_PROVIDER = ""
    ProviderConfigFactory(tenant=tenant_client.tenant, provider="openai")
    # The server no longer has the key the config was encrypted with: fail closed.
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        response = tenant_client.post(START, {"prompt": "A bicycle shop."}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "llm_unavailable"


# --- A real worker process ---------------------------------------------------------------

SETUP = """
from build_loop.services import build_start
from llm_providers.services import llm_provider_service
from tenants.models import Tenant
llm_provider_service.save_provider_config(
    tenant_id="tenant_proc", provider="local", default_model="{model}", base_url="{base_url}")
build = build_start(tenant=Tenant.objects.get(pk="tenant_proc"), prompt="A bicycle shop.",
                    max_iterations=1)
print(build.pk)
"""

REPORT = """
import json
from build_loop.models import Build
from django_tasks_db.models import DBTaskResult
from llm_providers.models import UsageLog
build = Build.objects.get()
print(json.dumps({
    "id": str(build.pk),
    "status": build.status,
    "steps": list(build.steps.values_list("name", "status")),
    "usage_rows": UsageLog.objects.filter(metadata__build_id=str(build.pk)).count(),
    "total_tokens": build.total_tokens,
    "task_id": build.task_id,
    "tasks": [[str(t.id), t.status] for t in DBTaskResult.objects.all()],
}))
"""


def test_a_separate_db_worker_process_runs_a_build_enqueued_by_another_process(
    tmp_path, httpserver
):
    """Two processes sharing only the database: the enqueue is seen only once committed."""
    for content in (json.dumps(BLUEPRINT), passing_review()):
        httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
            chat_reply(content)
        )
    with subprocess_database(tmp_path) as database_url:
        env = process_env(database_url, tmp_path)
        manage(env, "migrate", "--noinput", "-v", "0")
        base_url = httpserver.url_for("/v1").rstrip("/")
        setup = SETUP.format(model=MODEL, base_url=base_url)
        build_id = manage(env, "shell", "-c", setup).stdout.split()[-1]
        manage(env, "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0")
        report = json.loads(manage(env, "shell", "-c", REPORT).stdout.splitlines()[-1])

    httpserver.check_assertions()
    assert str(uuid.UUID(build_id)) == report["id"]  # the build the first process made
    assert report["status"] == "succeeded"
    assert report["steps"] == [["blueprint", "succeeded"], ["review", "succeeded"]]
    assert report["usage_rows"] == 2
    assert report["total_tokens"] == 100
    assert report["tasks"] == [[report["task_id"], "SUCCESSFUL"]]
