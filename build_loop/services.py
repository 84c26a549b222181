"""Build operations: start, cancel, run the loop, keep totals honest, reap stale builds."""

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from llm_providers.services import Endpoint, LLMService, build_step_span, usage_totals

from . import prompts
from .models import (
    ACTIVE_STATUSES,
    DEFAULT_MAX_ITERATIONS,
    Build,
    BuildStatus,
    BuildStep,
    StepName,
    StepStatus,
)
from .parsing import blueprint_as_text, extract_json_object, parse_review

logger = logging.getLogger(__name__)


class BuildError(Exception):
    """An application-level refusal, turned into the documented error JSON by the views."""

    code = "build_error"


class LLMUnavailable(BuildError):
    code = "llm_unavailable"

    def __init__(self):
        super().__init__("No usable LLM provider is configured for this tenant.")


class BuildNotCancellable(BuildError):
    code = "build_finished"

    def __init__(self, status: str):
        self.status = status
        super().__init__(f"The build has already finished ({status}); it cannot be cancelled.")


# --- Starting and cancelling (called from the web process) -----------------------------


def build_start(
    *, tenant, prompt: str, max_iterations: int = DEFAULT_MAX_ITERATIONS, model: str = ""
) -> Build:
    """Create a queued build and enqueue its task once the row is committed."""
    if not LLMService(tenant.pk).is_available():
        raise LLMUnavailable()
    build = Build(tenant=tenant, prompt=prompt, max_iterations=max_iterations, model=model or "")
    build.full_clean()
    with transaction.atomic():
        build.save(force_insert=True)
        # The worker must never see a task for a build row that is not committed yet.
        transaction.on_commit(partial(_enqueue_build, build.pk))
    logger.info("build %s queued for tenant %s", build.pk, tenant.pk)
    return build


def _enqueue_build(build_id) -> None:
    from .tasks import run_build_task  # tasks imports this module

    try:
        result = run_build_task.enqueue(str(build_id))
    except Exception:
        # A build whose task was never queued would stay "queued" forever.
        logger.exception("build %s could not be enqueued", build_id)
        Build.objects.filter(pk=build_id, status=BuildStatus.QUEUED).update(
            status=BuildStatus.FAILED,
            finished_at=timezone.now(),
            error={"type": "enqueue_failed", "message": "The build could not be queued."},
        )
        return
    Build.objects.filter(pk=build_id).update(task_id=str(result.id))


def build_cancel(*, build: Build) -> Build:
    """Cancel a queued or running build; a running loop stops before its next LLM call."""
    updated = Build.objects.filter(pk=build.pk, status__in=ACTIVE_STATUSES).update(
        status=BuildStatus.CANCELLED, finished_at=timezone.now()
    )
    build.refresh_from_db()
    if not updated:
        raise BuildNotCancellable(build.status)
    logger.info("build %s cancelled", build.pk)
    return build


# --- Running (called from the worker) --------------------------------------------------


def build_process(*, build_id: str) -> str:
    """The task body: reap stale builds, then run this one. Returns its final status."""
    try:
        fail_stale_builds()
    except Exception:
        # Housekeeping must never keep a build from running.
        logger.exception("stale build check failed")
    build = build_run(build_id=build_id)
    return build.status if build is not None else "missing"


def build_run(*, build_id) -> Build | None:
    """Claim a queued build and run the loop to the end; never leaves it "running"."""
    now = timezone.now()
    # The conditional update is the claim: a cancelled build, or one another worker
    # already took (a task delivered twice), is left alone.
    claimed = Build.objects.filter(pk=build_id, status=BuildStatus.QUEUED).update(
        status=BuildStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    build = Build.objects.filter(pk=build_id).first()
    if build is None:
        logger.warning("build %s not run: it no longer exists", build_id)
        return None
    if not claimed:
        logger.info("build %s not run: it is %s", build_id, build.status)
        return build
    try:
        _BuildLoop(build).run()
    except Exception:
        logger.exception("build %s stopped on an unexpected error", build_id)
        _finish(
            build.pk,
            BuildStatus.FAILED,
            error={
                "type": "internal_error",
                "message": "The build stopped on an unexpected error; see the worker log.",
            },
        )
        BuildStep.objects.filter(build_id=build.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.FAILED, finished_at=timezone.now()
        )
        raise
    build.refresh_from_db()
    return build


class _BuildLoop:
    """blueprint → review → (refine → review)* until a review passes or max_iterations."""

    def __init__(self, build: Build):
        self.build = build
        self.service = LLMService(build.tenant_id)
        self.position = build.steps.count()

    def run(self) -> None:
        build = self.build
        if not self.service.is_available():
            _finish(
                build.pk,
                BuildStatus.FAILED,
                error={
                    "type": "configuration",
                    "message": "No usable LLM provider is configured for this tenant.",
                },
            )
            return
        blueprint_text = ""
        feedback = ""
        for iteration in range(1, build.max_iterations + 1):
            if iteration == 1:
                name, prompt = StepName.BLUEPRINT, prompts.blueprint_prompt(build.prompt)
            else:
                name = StepName.REFINE
                prompt = prompts.refine_prompt(build.prompt, blueprint_text, feedback)
            step = self._call(name, iteration, prompt)
            if step is None:
                return
            parsed = extract_json_object(step.output)
            # Unparseable output is still the blueprint: keep the raw text, never lose it.
            self._save_parsed(step, parsed)
            Build.objects.filter(pk=build.pk).update(blueprint=parsed, blueprint_text=step.output)
            blueprint_text = blueprint_as_text(parsed, step.output)

            step = self._call(
                StepName.REVIEW, iteration, prompts.review_prompt(build.prompt, blueprint_text)
            )
            if step is None:
                return
            review, review_data = parse_review(step.output)
            self._save_parsed(step, review_data)
            Build.objects.filter(pk=build.pk).update(review_passed=review.passed)
            if review.passed:
                break
            feedback = review.feedback or "The review did not pass; improve the blueprint."
        if _finish(build.pk, BuildStatus.SUCCEEDED):
            logger.info("build %s succeeded", build.pk)

    def _call(self, name: str, iteration: int, prompt: str) -> BuildStep | None:
        """One LLM call as one step; None when the loop must stop (cancelled or failed)."""
        build_id = self.build.pk
        # Status check and heartbeat in one statement: cancel (or the stale reaper) wins.
        alive = Build.objects.filter(pk=build_id, status=BuildStatus.RUNNING).update(
            heartbeat_at=timezone.now(), iteration=iteration
        )
        if not alive:
            logger.info("build %s stopped before its %s call", build_id, name)
            return None
        self.position += 1
        step = BuildStep.objects.create(
            build_id=build_id, position=self.position, name=name, iteration=iteration
        )
        # [issue 12: traces] A span per step; the call's own span is its child.
        with build_step_span(build_id=build_id, step=name, iteration=iteration):
            result = self.service.generate_completion(
                prompt,
                max_tokens=settings.BUILD_MAX_TOKENS,
                system=prompts.SYSTEM,
                model=self.build.model or None,
                endpoint=Endpoint.COMPLETION.value,
                metadata={"build_id": str(build_id), "step": name, "iteration": iteration},
            )
        step.status = StepStatus.SUCCEEDED if result.success else StepStatus.FAILED
        step.output = result.content or ""
        step.provider = result.provider or ""
        step.model = result.model or ""
        step.tokens_used = result.tokens_used or 0
        step.prompt_tokens = result.prompt_tokens or 0
        step.completion_tokens = result.completion_tokens or 0
        step.cost_usd = result.cost_usd
        step.latency_ms = result.latency_ms or 0
        step.usage_log_id = result.usage_log_id
        step.error = None if result.success else error_as_dict(result.error)
        step.finished_at = timezone.now()
        step.save()
        refresh_build_totals(build_id)
        if not result.success:
            _finish(build_id, BuildStatus.FAILED, error=step.error)
            logger.warning("build %s failed at %s: %s", build_id, name, step.error.get("type"))
            return None
        return step

    @staticmethod
    def _save_parsed(step: BuildStep, parsed: dict | None) -> None:
        if parsed is not None:
            step.parsed = parsed
            step.save(update_fields=["parsed"])


def error_as_dict(error) -> dict:
    """The normalised provider error as stored on builds and steps."""
    if error is None:
        return {"type": "bad_response", "message": "The provider call failed.", "status_code": None}
    if hasattr(error, "as_dict"):
        data = dict(error.as_dict())
    else:
        data = {
            "type": getattr(error, "type", "bad_response"),
            "message": getattr(error, "message", str(error)),
        }
    data.setdefault("status_code", getattr(error, "status_code", None))
    return data


def _finish(build_id, status: str, *, error: dict | None = None) -> bool:
    """Move a running build to a final status; False when it was cancelled or reaped first."""
    return bool(
        Build.objects.filter(pk=build_id, status=BuildStatus.RUNNING).update(
            status=status, finished_at=timezone.now(), error=error
        )
    )


def refresh_build_totals(build_id) -> None:
    """Recompute the build's totals from its steps' usage rows (the single source of truth).

    The cost is unknown (null) when any step's cost is: the one definition of an unknown
    cost, in llm_providers/usage/metrics.py.
    """
    build = Build.objects.only("tenant_id").get(pk=build_id)
    step_rows = BuildStep.objects.filter(build_id=build_id, usage_log__isnull=False)
    totals = usage_totals(tenant=build.tenant_id, usage_log_ids=step_rows.values("usage_log_id"))
    Build.objects.filter(pk=build_id).update(
        total_tokens=totals["tokens"],
        total_prompt_tokens=totals["prompt_tokens"],
        total_completion_tokens=totals["completion_tokens"],
        total_latency_ms=totals["latency_sum"],
        total_cost_usd=totals["known_cost_usd"],
    )


# --- Crash recovery ---------------------------------------------------------------------


STALE_ERROR = {
    "type": "stale",
    "message": "The worker running this build stopped sending heartbeats; the build was "
    "failed. Finished steps are kept; start a new build to retry.",
    "status_code": None,
}


def fail_stale_builds(*, now=None) -> list:
    """Fail running builds whose heartbeat is older than BUILD_STALE_AFTER_SECONDS.

    Failing rather than resuming: the interrupted call may already have been paid for, and
    a resumed loop could race a worker that is only slow. A slow worker that comes back
    finds its build no longer running and stops. Returns the ids of the failed builds.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BUILD_STALE_AFTER_SECONDS)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    failed = []
    for build_id in Build.objects.filter(stale, status=BuildStatus.RUNNING).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            updated = Build.objects.filter(stale, pk=build_id, status=BuildStatus.RUNNING).update(
                status=BuildStatus.FAILED, finished_at=now, error=STALE_ERROR
            )
            if updated:
                BuildStep.objects.filter(build_id=build_id, status=StepStatus.RUNNING).update(
                    status=StepStatus.FAILED, finished_at=now, error=STALE_ERROR
                )
                failed.append(build_id)
    for build_id in failed:
        logger.warning("build %s failed: stale (no heartbeat since before %s)", build_id, cutoff)
    return failed
