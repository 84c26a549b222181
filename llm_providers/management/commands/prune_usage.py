"""Delete raw usage rows older than N days whose days are rolled up (SPEC §15)."""

from django.core.management.base import BaseCommand, CommandError

from llm_providers.usage import retention, rollup


class Command(BaseCommand):
    help = (
        "Delete raw usage rows (llm_usage_logs) of whole UTC days that ended more than DAYS "
        "days ago and are rolled up into llm_usage_daily, in small batches (safe while "
        "serving). Usage stats over whole days answer the same afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument(
            "--batch-size", type=int, default=retention.DEFAULT_BATCH_SIZE, help="Rows per batch."
        )

    def handle(self, *args, older_than, batch_size, **options):
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        deleted = retention.usage_prune(older_than_days=older_than, batch_size=batch_size)
        before = rollup.pruned_before()
        if before is None:
            self.stdout.write("Nothing is rolled up yet (manage.py rollup_usage): nothing pruned.")
            return
        self.stdout.write(f"Deleted {deleted} usage row(s); raw usage is kept from {before} on.")
