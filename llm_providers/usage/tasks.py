"""Background tasks of llm_providers (django.tasks; the worker is `manage.py db_worker`)."""

from django.tasks import task

from . import rollup


@task()
def roll_up_usage() -> int:
    """Roll up the closed UTC days not rolled up yet; returns how many days it did."""
    return len(rollup.usage_rollup_pending())
