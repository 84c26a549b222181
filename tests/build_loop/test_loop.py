import json
from decimal import Decimal

import pytest
from django.db.models import Sum

from build_loop import services
from build_loop.models import Build, BuildStatus
from llm_providers.errors import ProviderError
from llm_providers.models import UsageLog
from tests.build_loop.factories import BuildFactory
from tests.build_loop.fakes import (
    BLUEPRINT,
    REFINED,
    Reply,
    failing_review,
    passing_review,
)

pytestmark = pytest.mark.django_db


def run(build) -> Build:
    services.build_run(build_id=build.pk)
    build.refresh_from_db()
    return build


def step_names(build):
    return list(build.steps.values_list("name", "iteration", "status"))


def test_succeeds_after_one_iteration_when_the_first_review_passes(tenant, fake_llm):
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]
    build = run(BuildFactory(tenant=tenant))

    assert build.status == BuildStatus.SUCCEEDED
    assert build.blueprint == BLUEPRINT
    assert build.review_passed is True
    assert build.iteration == 1
    assert build.error is None
    assert build.started_at and build.finished_at
    assert step_names(build) == [("blueprint", 1, "succeeded"), ("review", 1, "succeeded")]


def test_refines_until_max_iterations_when_the_review_never_passes(tenant, fake_llm):
    fake_llm.replies += [
        json.dumps(BLUEPRINT),
        failing_review("one"),
        json.dumps({**REFINED, "v": 2}),
        failing_review("two"),
        json.dumps({**REFINED, "v": 3}),
        failing_review("three"),
    ]
    build = run(BuildFactory(tenant=tenant, max_iterations=3))

    assert build.status == BuildStatus.SUCCEEDED
    assert build.review_passed is False
    assert build.blueprint == {**REFINED, "v": 3}
    assert build.iteration == 3
    assert [s[:2] for s in step_names(build)] == [
        ("blueprint", 1),
        ("review", 1),
        ("refine", 2),
        ("review", 2),
        ("refine", 3),
        ("review", 3),
    ]
    assert build.progress()["text"] == "step 6 of at most 6"
    assert fake_llm.replies == []


def test_refine_prompt_carries_the_previous_blueprint_and_the_review(tenant, fake_llm):
    fake_llm.replies += [
        json.dumps(BLUEPRINT),
        failing_review("Missing payments."),
        json.dumps(REFINED),
        passing_review(),
    ]
    build = run(BuildFactory(tenant=tenant))

    refine_prompt = fake_llm.calls[2]["prompt"]
    assert "Missing payments." in refine_prompt
    assert '"title": "Shop"' in refine_prompt
    assert build.prompt in refine_prompt
    assert build.status == BuildStatus.SUCCEEDED
    assert build.blueprint == REFINED
    assert build.review_passed is True
    assert build.steps.count() == 4


def test_unparseable_blueprint_is_kept_as_raw_text_and_the_build_ends_cleanly(tenant, fake_llm):
    fake_llm.replies += ["I would build a shop with a cart.", "not json either"]
    build = run(BuildFactory(tenant=tenant, max_iterations=1))

    assert build.status == BuildStatus.SUCCEEDED
    assert build.blueprint is None
    assert build.blueprint_text == "I would build a shop with a cart."
    assert build.review_passed is False
    review_prompt = fake_llm.calls[1]["prompt"]
    assert "I would build a shop with a cart." in review_prompt


def test_unparseable_reviews_count_as_not_passed_and_the_loop_still_ends(tenant, fake_llm):
    fake_llm.replies += [
        json.dumps(BLUEPRINT),
        "Looks good!",
        '```json\n{"title": "T"',
        "{broken",
    ]
    build = run(BuildFactory(tenant=tenant, max_iterations=2))

    assert build.status == BuildStatus.SUCCEEDED
    assert build.review_passed is False
    # A truncated refine answer is still the latest blueprint, as raw text.
    assert build.blueprint is None
    assert build.blueprint_text == '```json\n{"title": "T"'
    assert build.steps.count() == 4


def test_json_in_code_fences_and_prose_is_parsed(tenant, fake_llm):
    fake_llm.replies += [
        f"Here you go:\n```json\n{json.dumps(BLUEPRINT)}\n```",
        'My verdict: {"passed": true, "issues": []} -- done.',
    ]
    build = run(BuildFactory(tenant=tenant))

    assert build.blueprint == BLUEPRINT
    assert build.review_passed is True
    assert build.steps.get(name="review").parsed == {"passed": True, "issues": []}


def test_provider_error_fails_the_build_with_the_normalised_error_and_keeps_steps(tenant, fake_llm):
    error = ProviderError("rate_limit", "Rate limit reached for requests.", 429)
    fake_llm.replies += [json.dumps(BLUEPRINT), failing_review(), Reply(error=error)]
    build = run(BuildFactory(tenant=tenant))

    assert build.status == BuildStatus.FAILED
    assert build.error == {
        "type": "rate_limit",
        "message": "Rate limit reached for requests.",
        "status_code": 429,
    }
    assert build.finished_at is not None
    assert step_names(build) == [
        ("blueprint", 1, "succeeded"),
        ("review", 1, "succeeded"),
        ("refine", 2, "failed"),
    ]
    failed = build.steps.get(name="refine")
    assert failed.error["type"] == "rate_limit"
    assert failed.usage_log.success is False
    # The last good blueprint is not lost.
    assert build.blueprint == BLUEPRINT


def test_provider_error_on_the_first_call_fails_the_build(tenant, fake_llm):
    fake_llm.replies += [Reply(error=ProviderError("authentication", "Invalid API key.", 401))]
    build = run(BuildFactory(tenant=tenant))

    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "authentication"
    assert build.steps.count() == 1


def test_cancelling_during_a_call_stops_the_loop_before_its_next_call(tenant, fake_llm):
    build = BuildFactory(tenant=tenant)

    def cancel_now():
        services.build_cancel(build=Build.objects.get(pk=build.pk))

    fake_llm.replies += [Reply(content=json.dumps(BLUEPRINT), before=cancel_now), passing_review()]
    build = run(build)

    assert build.status == BuildStatus.CANCELLED
    assert len(fake_llm.calls) == 1
    # The call that was under way is still recorded and counted.
    assert step_names(build) == [("blueprint", 1, "succeeded")]
    assert build.total_tokens == 100


def test_a_build_cancelled_while_queued_is_never_run(tenant, fake_llm):
    build = BuildFactory(tenant=tenant)
    services.build_cancel(build=build)
    build = run(build)

    assert build.status == BuildStatus.CANCELLED
    assert fake_llm.calls == []
    assert build.steps.count() == 0


def test_a_build_is_run_only_once_even_when_its_task_is_delivered_twice(tenant, fake_llm):
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]
    build = run(BuildFactory(tenant=tenant))
    build = run(build)

    assert build.status == BuildStatus.SUCCEEDED
    assert len(fake_llm.calls) == 2


def test_every_call_goes_through_llm_service_with_build_id_and_step_in_metadata(tenant, fake_llm):
    fake_llm.replies += [
        json.dumps(BLUEPRINT),
        failing_review(),
        json.dumps(REFINED),
        passing_review(),
    ]
    build = run(BuildFactory(tenant=tenant, model="gpt-4o"))

    assert [c["metadata"]["step"] for c in fake_llm.calls] == [
        "blueprint",
        "review",
        "refine",
        "review",
    ]
    assert {c["metadata"]["build_id"] for c in fake_llm.calls} == {str(build.pk)}
    assert {c["endpoint"] for c in fake_llm.calls} == {"completion"}
    assert {c["model"] for c in fake_llm.calls} == {"gpt-4o"}
    assert {c["tenant_id"] for c in fake_llm.calls} == {tenant.pk}
    assert all(c["system"] for c in fake_llm.calls)
    logged = UsageLog.objects.for_tenant(tenant).filter(metadata__build_id=str(build.pk))
    assert logged.count() == 4
    assert set(build.steps.values_list("usage_log_id", flat=True)) == set(
        logged.values_list("pk", flat=True)
    )


def test_without_a_model_override_the_config_default_is_used(tenant, fake_llm):
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]
    run(BuildFactory(tenant=tenant, model=""))
    assert {c["model"] for c in fake_llm.calls} == {None}


def test_build_totals_equal_the_sum_of_its_steps_usage_rows(tenant, fake_llm):
    fake_llm.replies += [
        Reply(
            content=json.dumps(BLUEPRINT),
            prompt_tokens=11,
            completion_tokens=22,
            latency_ms=300,
            cost_usd=Decimal("0.00100000"),
        ),
        Reply(
            content=failing_review(),
            prompt_tokens=5,
            completion_tokens=7,
            latency_ms=50,
            cost_usd=Decimal("0.00020000"),
        ),
        Reply(error=ProviderError("server_error", "Upstream 500.", 500), latency_ms=900),
    ]
    # Usage rows of another build and another call of the tenant must not be counted.
    UsageLog.objects.create(
        tenant=tenant,
        provider="openai",
        model="m",
        tokens_used=999,
        latency_ms=999,
        success=True,
        cost_usd=Decimal("1"),
    )
    build = run(BuildFactory(tenant=tenant))

    rows = UsageLog.objects.filter(pk__in=build.steps.values("usage_log_id"))
    expected = rows.aggregate(
        tokens=Sum("tokens_used"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        latency=Sum("latency_ms"),
        cost=Sum("cost_usd"),
    )
    assert rows.count() == 3
    assert build.total_tokens == expected["tokens"] == 45
    assert build.total_prompt_tokens == expected["prompt"] == 16
    assert build.total_completion_tokens == expected["completion"] == 29
    assert build.total_latency_ms == expected["latency"] == 1250
    assert build.total_cost_usd == expected["cost"] == Decimal("0.0012")


def test_total_cost_is_unknown_when_a_step_used_tokens_at_an_unknown_price(tenant, fake_llm):
    fake_llm.replies += [
        Reply(content=json.dumps(BLUEPRINT), cost_usd=Decimal("0.001")),
        Reply(content=passing_review(), cost_usd=None),
    ]
    build = run(BuildFactory(tenant=tenant))
    assert build.total_tokens == 200
    assert build.total_cost_usd is None


def test_total_cost_is_unknown_when_a_step_reported_no_usage_and_so_no_price(tenant, fake_llm):
    # The one definition (usage/metrics.py): a null cost is unknown, tokens or not; the
    # build totals used to count a null-cost row without tokens as free.
    fake_llm.replies += [
        Reply(content=json.dumps(BLUEPRINT), cost_usd=Decimal("0.001")),
        Reply(content=passing_review(), prompt_tokens=0, completion_tokens=0, cost_usd=None),
    ]
    build = run(BuildFactory(tenant=tenant))
    assert build.status == BuildStatus.SUCCEEDED
    assert build.total_tokens == 100
    assert build.total_cost_usd is None


def test_a_failed_step_that_reported_no_usage_costs_nothing(tenant, fake_llm):
    fake_llm.replies += [
        Reply(content=json.dumps(BLUEPRINT), cost_usd=Decimal("0.001")),
        Reply(error=ProviderError("timeout", "Timed out.", None)),
    ]
    build = run(BuildFactory(tenant=tenant))
    assert build.status == BuildStatus.FAILED
    assert build.total_cost_usd == Decimal("0.001")


def test_totals_are_recomputed_from_the_rows_not_accumulated(tenant, fake_llm):
    fake_llm.replies += [json.dumps(BLUEPRINT), passing_review()]
    build = run(BuildFactory(tenant=tenant))
    # Recomputing twice gives the same numbers: nothing is added on top of old totals.
    services.refresh_build_totals(build.pk)
    services.refresh_build_totals(build.pk)
    build.refresh_from_db()
    assert build.total_tokens == 200


def test_a_build_whose_provider_vanished_before_it_ran_fails_with_configuration_error(
    tenant, fake_llm
):
    fake_llm.available = False
    build = run(BuildFactory(tenant=tenant))

    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "configuration"
    assert fake_llm.calls == []


def test_an_unexpected_exception_fails_the_build_instead_of_leaving_it_running(tenant, fake_llm):
    def boom():
        raise RuntimeError("bug with sk-test-fake-key-0001 inside")

    fake_llm.replies += [Reply(content="x", before=boom)]
    build = BuildFactory(tenant=tenant)
    with pytest.raises(RuntimeError):
        services.build_run(build_id=build.pk)
    build.refresh_from_db()

    assert build.status == BuildStatus.FAILED
    assert build.error["type"] == "internal_error"
    assert "sk-test" not in json.dumps(build.error)
    assert step_names(build) == [("blueprint", 1, "failed")]


def test_a_task_for_a_deleted_build_ends_quietly(tenant, fake_llm):
    build = BuildFactory(tenant=tenant)
    build_id = str(build.pk)
    build.delete()
    assert services.build_process(build_id=build_id) == "missing"
    assert fake_llm.calls == []
