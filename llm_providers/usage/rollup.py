"""The daily usage rollup (`llm_usage_daily`): filling it for closed UTC days.

A UTC day is immutable once it is over (usage rows are written at "now"), so its usage can
be aggregated once per (tenant, day, provider, model, endpoint, success, error_type) and
the stats query reads a few thousand rollup rows instead of a million usage rows. The
watermark (`UsageRollupState.rolled_until`) says which days are in the table: every day
before it. Days are filled by the `roll_up_usage` task (enqueued lazily by the stats
selector, at most once a day) and by `manage.py rollup_usage`.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import DateField, Min, Value
from django.utils import timezone

from ..models import UsageDailyRollup, UsageLog, UsageRollupState
from . import metrics

logger = logging.getLogger(__name__)

# A day is rolled up only this long after it ended: a usage row stamped 23:59:59.999 may
# be committed a moment after midnight, and the rollup must not miss it.
ROLLUP_GRACE = timedelta(minutes=10)

# The rollup's key columns, named alike in llm_usage_logs and llm_usage_daily.
KEY_FIELDS = ("provider", "model", "endpoint", "success", "error_type")
DAY_ALIAS = "r_day"


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def rollable_until(now: datetime | None = None) -> date:
    """The first day that must not be rolled up yet: every day before it is closed."""
    return utc_today((now or timezone.now()) - ROLLUP_GRACE)


def rollup_state() -> UsageRollupState | None:
    return UsageRollupState.objects.filter(pk=UsageRollupState.SINGLETON).first()


def _day_select(day: date):
    """One day's usage rows grouped by the rollup key, as the rollup table's columns.

    The aggregates are usage/metrics.py's, those the rollup stores (not `successes`:
    `success` is part of the key).
    """
    aggregates = {alias: raw for alias, (_column, raw) in metrics.stored_aggregates().items()}
    return (
        UsageLog.objects.filter(
            created_at__gte=day_start(day), created_at__lt=day_start(day + timedelta(days=1))
        )
        .order_by()
        .values("tenant_id", *KEY_FIELDS)
        .annotate(**{DAY_ALIAS: Value(day, output_field=DateField())}, **aggregates)
    )


def _insert_day(day: date) -> int:
    """INSERT INTO llm_usage_daily … SELECT … GROUP BY: one statement, no row in Python."""
    select = _day_select(day)
    query = select.query
    names = [*query.values_select, *query.annotation_select]
    # Aliases differ from the models' field names (the ORM refuses collisions); the
    # INSERT names the target columns explicitly.
    stored = {alias: column for alias, (column, _raw) in metrics.stored_aggregates().items()}
    fields = {"tenant_id": "tenant", DAY_ALIAS: "day", **stored}
    columns = [UsageDailyRollup._meta.get_field(fields.get(name, name)).column for name in names]
    sql, params = query.sql_with_params()
    qn = connection.ops.quote_name
    insert = (
        f"INSERT INTO {qn(UsageDailyRollup._meta.db_table)} "
        f"({', '.join(qn(c) for c in columns)}) {sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
        return cursor.rowcount


class NotRollable(ValueError):
    """A day that is not closed yet, or after the watermark (days before it come first)."""


def usage_rollup_days(days: Iterable[date], *, now: datetime | None = None) -> list[date]:
    """(Re)compute the rollups of the given closed UTC days, each in its own transaction.

    A day's rollup rows are replaced (delete + one INSERT … SELECT … GROUP BY). A day at
    the watermark moves it on by one day. A day after the watermark is refused, so that
    rollup rows only ever exist for days before it: the stats query can then read the
    rollup table with constant bounds (and an exact index range).
    """
    today = utc_today(now)
    done = []
    for day in sorted(set(days)):
        if day >= today:
            raise NotRollable(f"{day} is not a closed UTC day (today is {today}).")
        with transaction.atomic():
            # The lock serialises concurrent runs (two workers, a worker and the command).
            state = (
                UsageRollupState.objects.select_for_update()
                .filter(pk=UsageRollupState.SINGLETON)
                .first()
            )
            if state is None or day > state.rolled_until:
                until = state.rolled_until if state else None
                raise NotRollable(
                    f"{day} is after the rolled-up days (until {until}): roll up the days "
                    "before it first (usage_rollup_pending / manage.py rollup_usage)."
                )
            if state.pruned_before is not None and day < state.pruned_before:
                # Its raw rows are gone: recomputing would replace the rollup with nothing.
                raise NotRollable(
                    f"{day} was pruned (raw usage before {state.pruned_before} is deleted); "
                    "its rollup is its only record and is kept."
                )
            UsageDailyRollup.objects.filter(day=day).delete()
            rows = _insert_day(day)
            if day == state.rolled_until:
                _set_watermark(day + timedelta(days=1))
        logger.info("usage rollup: %s, %s rows", day, rows)
        done.append(day)
    return done


def _set_watermark(until: date) -> None:
    UsageRollupState.objects.update_or_create(
        pk=UsageRollupState.SINGLETON,
        defaults={"rolled_until": until, "rolled_until_at": day_start(until)},
    )


def usage_rollup_pending(*, now: datetime | None = None) -> list[date]:
    """Roll up every closed day that is not yet: from the watermark up to yesterday
    (yesterday only ROLLUP_GRACE after midnight).

    On the first run the watermark starts at the first day with any usage (the days
    before it have none, so they count as rolled up); with no usage at all, at today.
    """
    today = rollable_until(now)
    with transaction.atomic():
        state = (
            UsageRollupState.objects.select_for_update()
            .filter(pk=UsageRollupState.SINGLETON)
            .first()
        )
        if state is None:
            first = UsageLog.objects.order_by().aggregate(first=Min("created_at"))["first"]
            start = min(utc_today(first), today) if first is not None else today
            _set_watermark(start)
        else:
            start = state.rolled_until
    return usage_rollup_days(
        (start + timedelta(days=n) for n in range((today - start).days)), now=now
    )


def usage_rollup_rebuild(*, now: datetime | None = None) -> list[date]:
    """Drop every rollup and the watermark, then roll up all closed days again.

    Days whose raw rows were pruned keep their rollups; only the later ones are redone.

    Until it is done the stats read the usage rows (correct, only slower).
    """
    with transaction.atomic():
        state = rollup_state()
        pruned_before = state.pruned_before if state else None
        if pruned_before is None:
            UsageRollupState.objects.all().delete()
            UsageDailyRollup.objects.all().delete()
        else:
            # Pruned days keep their rollups (their raw rows are gone): rebuild the rest.
            UsageDailyRollup.objects.filter(day__gte=pruned_before).delete()
            _set_watermark(pruned_before)
    return usage_rollup_pending(now=now)


def pruned_before() -> date | None:
    """The first day whose raw usage rows are all still there (None: nothing pruned)."""
    state = rollup_state()
    return state.pruned_before if state else None
