from django.core.management.base import BaseCommand

from build_loop.services import fail_stale_builds


class Command(BaseCommand):
    help = (
        "Fail running builds whose worker stopped sending heartbeats "
        "(older than BUILD_STALE_AFTER_SECONDS). Safe to run from cron at any time."
    )

    def handle(self, *args, **options):
        failed = fail_stale_builds()
        for build_id in failed:
            self.stdout.write(f"failed stale build {build_id}")
        self.stdout.write(f"{len(failed)} stale build(s) failed.")
