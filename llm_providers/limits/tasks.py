"""The periodic reconciliation, queued by admission at most every LLM_LIMITS_RECONCILE_SECONDS."""

from django.tasks import task

from .reconcile import reconcile_all


@task()
def reconcile_llm_limits() -> int:
    return len(reconcile_all())
