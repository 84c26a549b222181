"""Background tasks of the build loop (django.tasks; the worker is `manage.py db_worker`)."""

from django.tasks import task

from . import services


@task()
def run_build_task(build_id: str) -> str:
    """Run one build in the worker; returns its final status."""
    return services.build_process(build_id=build_id)
