"""A build against a real llama.cpp llama-server with Gemma 3 270M (make test-e2e).

The tiny model may or may not answer in usable JSON; either way the loop must end cleanly:
`succeeded` (possibly with review_passed false and only the raw blueprint text), or
`failed` with a normalised provider error. In both cases every step has its usage row and
the build's totals are the sums of those rows.
"""

import pytest
from django.db.models import Sum
from django_tasks_db.models import DBTaskResult

from build_loop.models import Build, BuildStatus, StepStatus
from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import llm_provider_service
from tests.support.worker import run_worker_until_idle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MODEL_ALIAS = "gemma-3-270m"


@pytest.mark.django_db(transaction=True)
def test_a_build_against_the_real_model_ends_cleanly_and_is_fully_accounted(
    tenant_client, llama_base_url, settings, keep_signal_handlers
):
    # Short answers and one iteration (two calls) keep the run short on two cores; the
    # context is 2048. On a busy machine the model has produced as little as 2 tokens/s,
    # so each call gets a generous read timeout and no retry (a retry would only queue
    # behind the abandoned request in llama-server's single slot).
    settings.BUILD_MAX_TOKENS = 192
    settings.LLM_REQUEST_TIMEOUT = 300
    settings.LLM_MAX_RETRIES = 0
    llm_provider_service.save_provider_config(
        tenant_id=tenant_client.tenant.pk,
        provider="local",
        default_model=MODEL_ALIAS,
        base_url=llama_base_url,
    )

    response = tenant_client.post(
        "/api/build/start",
        {"prompt": "A to-do list web app with user accounts.", "max_iterations": 1},
        format="json",
    )
    assert response.status_code == 202, response.content
    run_worker_until_idle()

    build = Build.objects.get(pk=response.json()["id"])
    steps = list(build.steps.order_by("position"))
    print(f"\nbuild {build.status}, review_passed={build.review_passed}, steps:")
    for step in steps:
        print(f"  {step.name}#{step.iteration} {step.status} {step.tokens_used} tokens")

    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
    assert build.status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED)
    assert build.finished_at is not None
    assert steps and steps[0].name == "blueprint"
    assert StepStatus.RUNNING not in {step.status for step in steps}
    if build.status == BuildStatus.SUCCEEDED:
        assert build.error is None
        assert build.blueprint_text.strip()
        assert build.review_passed in (True, False)
        assert all(step.status == StepStatus.SUCCEEDED for step in steps)
    else:
        assert build.error["type"] in set(ErrorType), build.error
        assert build.error["message"]
        assert steps[-1].status == StepStatus.FAILED

    rows = UsageLog.objects.for_tenant(build.tenant_id).filter(metadata__build_id=str(build.pk))
    assert sorted(rows.values_list("pk", flat=True)) == sorted(step.usage_log_id for step in steps)
    assert set(rows.values_list("provider", "endpoint")) == {("local", "completion")}
    sums = rows.aggregate(tokens=Sum("tokens_used"), latency=Sum("latency_ms"))
    assert build.total_tokens == sums["tokens"] == sum(step.tokens_used for step in steps)
    assert build.total_latency_ms == sums["latency"]
    body = tenant_client.get(response.json()["status_url"]).json()
    assert body["totals"]["tokens_used"] == build.total_tokens
    assert len(body["steps"]) == len(steps)
