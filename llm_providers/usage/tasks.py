"""Background tasks of llm_providers (django.tasks; the worker is `manage.py db_worker`)."""

from django.conf import settings
from django.tasks import task

from . import retention, rollup


@task()
def roll_up_usage() -> int:
    """Roll up the closed UTC days not rolled up yet; returns how many days it did.

    With LLM_USAGE_RETENTION_DAYS set it then prunes the raw rows past the retention:
    the rollup task is queued once a day (lazily, see usage.selectors), so this is the
    retention's daily run too, and it always follows the rollup it depends on.
    """
    days = len(rollup.usage_rollup_pending())
    if settings.LLM_USAGE_RETENTION_DAYS:
        retention.usage_prune(older_than_days=settings.LLM_USAGE_RETENTION_DAYS)
    return days
