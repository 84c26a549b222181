"""Fill the daily usage rollup (llm_usage_daily) for closed UTC days."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from llm_providers.usage import rollup


class Command(BaseCommand):
    help = (
        "Roll up usage of closed UTC days into llm_usage_daily: every day not rolled up yet "
        "(what the background task does); --days N also recomputes the last N closed days "
        "(e.g. after importing old usage rows); --rebuild recomputes every day."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=0, help="Also recompute the last N closed UTC days."
        )
        parser.add_argument(
            "--rebuild", action="store_true", help="Drop all rollups and recompute every day."
        )

    def handle(self, *args, days, rebuild, **options):
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        if rebuild:
            done = rollup.usage_rollup_rebuild()
        else:
            done = rollup.usage_rollup_pending()
        today = rollup.rollable_until()
        pruned = rollup.pruned_before()
        # Pruned days keep their rollups: their raw rows are gone.
        recent = [
            day
            for day in (today - timedelta(days=n) for n in range(1, days + 1))
            if pruned is None or day >= pruned
        ]
        done += rollup.usage_rollup_days(day for day in recent if day not in set(done))
        state = rollup.rollup_state()
        until = state.rolled_until if state else None
        self.stdout.write(
            f"Rolled up {len(done)} day(s); every closed day before {until} is rolled up."
        )
