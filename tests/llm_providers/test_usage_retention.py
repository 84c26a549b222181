"""Usage retention: pruning raw rows of rolled-up days, and stats that do not change."""

import random
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from build_loop.models import Build, BuildStep
from llm_providers.models import UsageDailyRollup, UsageLog, UsageRollupState
from llm_providers.usage import retention, rollup, tasks
from llm_providers.usage.selectors import STATS_GROUPS, usage_stats_for_window
from tests.factories import TenantFactory, UsageLogFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 13, 30, tzinfo=UTC)  # "today" is 2026-03-20


def at(day: int, hour: int = 12, month: int = 3):
    return datetime(2026, month, day, hour, tzinfo=UTC)


def log(tenant, created_at, **fields):
    row = UsageLogFactory(tenant=tenant, **fields)
    UsageLog.objects.filter(pk=row.pk).update(created_at=created_at)
    return row


def roll_up_to_now():
    return rollup.usage_rollup_pending(now=NOW)


@pytest.fixture
def history():
    """Two tenants with varied usage on every day from 1 March to today."""
    rng = random.Random(12)
    tenants = [TenantFactory(id="ret_a"), TenantFactory(id="ret_b")]
    for day in range(1, 21):
        for tenant in tenants:
            for _ in range(rng.randint(0, 4)):
                success = rng.random() > 0.2
                log(
                    tenant,
                    at(day, rng.randint(0, 23 if day < 20 else 12)),
                    provider=rng.choice(["openai", "anthropic"]),
                    model=rng.choice(["m1", "m2"]),
                    endpoint=rng.choice(["chat", "completion"]),
                    success=success,
                    error_type="" if success else "timeout",
                    prompt_tokens=rng.randint(0, 500),
                    completion_tokens=rng.randint(0, 500),
                    tokens_used=rng.randint(0, 1000),
                    cost_usd=rng.choice([None, Decimal("0.00012345")]),
                    latency_ms=rng.randint(1, 5000),
                )
    return tenants


WINDOWS = [
    (None, None),  # the default: the last 30 days
    (at(1, 0), at(21, 0)),
    (at(5, 0), at(15, 0)),
    (at(10, 0), None),
]
FILTERS = [{}, {"provider": "openai"}, {"success": False}, {"endpoint": "chat", "model": "m2"}]


def all_stats(tenants):
    return [
        usage_stats_for_window(t, start=s, end=e, group_by=g, filters=f, now=NOW)
        for t in tenants
        for s, e in WINDOWS
        for g in (None, *STATS_GROUPS)
        for f in FILTERS
    ]


def test_stats_are_identical_before_and_after_pruning(history):
    roll_up_to_now()
    before = all_stats(history)
    rows_before = UsageLog.objects.count()

    deleted = retention.usage_prune(older_than_days=7, now=NOW)

    # Days up to 12 March ended 7 days before NOW (13 March 13:30): 13 March is kept.
    assert deleted > 0
    assert UsageLog.objects.count() == rows_before - deleted
    assert not UsageLog.objects.filter(created_at__lt=at(13, 0)).exists()
    assert all_stats(history) == before


def test_only_rolled_up_days_are_pruned(history):
    rollup.usage_rollup_pending(now=at(8, 1))  # rolled up: 1-7 March only
    later = UsageLog.objects.filter(created_at__gte=at(8, 0)).count()
    retention.usage_prune(older_than_days=3, now=NOW)  # old enough: up to 16 March
    assert not UsageLog.objects.filter(created_at__lt=at(8, 0)).exists()
    assert UsageLog.objects.filter(created_at__gte=at(8, 0)).count() == later
    state = UsageRollupState.objects.get()
    assert state.pruned_before == state.rolled_until == datetime(2026, 3, 8).date()


def test_nothing_is_pruned_before_anything_is_rolled_up(history):
    count = UsageLog.objects.count()
    assert retention.usage_prune(older_than_days=1, now=NOW) == 0
    assert UsageLog.objects.count() == count


def test_rows_go_in_batches_of_small_transactions():
    tenant = TenantFactory()
    for hour in range(5):
        log(tenant, at(2, hour))
    rollup.usage_rollup_pending(now=NOW)
    with CaptureQueriesContext(connection) as queries:
        assert retention.usage_prune(older_than_days=1, batch_size=2, now=NOW) == 5
    deletes = [
        q["sql"] for q in queries if q["sql"].startswith("DELETE") and "llm_usage_logs" in q["sql"]
    ]
    assert len(deletes) == 3  # 2 + 2 + 1 rows


def test_pruned_days_are_never_recomputed_from_nothing(history):
    roll_up_to_now()
    before = all_stats(history)
    retention.usage_prune(older_than_days=7, now=NOW)
    pruned_day = at(5).date()

    with pytest.raises(rollup.NotRollable, match="pruned"):
        rollup.usage_rollup_days([pruned_day], now=NOW)
    rollup.usage_rollup_rebuild(now=NOW)  # keeps the pruned days' rollups
    assert UsageDailyRollup.objects.filter(day=pruned_day).exists()
    assert all_stats(history) == before


@pytest.fixture
def frozen_now(monkeypatch):
    """What the command and the task see as "now" (they take no `now` argument)."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def rollup_rows():
    return sorted(UsageDailyRollup.objects.values_list("tenant_id", "day", "requests", "tokens"))


def test_rollup_command_days_skips_pruned_days(history, frozen_now):
    roll_up_to_now()
    retention.usage_prune(older_than_days=7, now=NOW)
    rows = rollup_rows()
    out = StringIO()
    call_command("rollup_usage", "--days", "15", stdout=out)  # 5-19 March; 5-12 are pruned
    assert "Rolled up 7 day(s)" in out.getvalue()
    assert rollup_rows() == rows


def test_build_steps_lose_their_usage_reference_and_builds_keep_their_totals():
    tenant = TenantFactory()
    row = log(tenant, at(2), tokens_used=42)
    build = Build.objects.create(tenant=tenant, prompt="p", total_tokens=42)
    step = BuildStep.objects.create(
        build=build, position=1, iteration=1, name="blueprint", usage_log=row
    )
    rollup.usage_rollup_pending(now=NOW)
    assert retention.usage_prune(older_than_days=1, now=NOW) == 1
    step.refresh_from_db()
    build.refresh_from_db()
    assert step.usage_log_id is None
    assert build.total_tokens == 42


def test_prune_usage_command(history):
    roll_up_to_now()
    out = StringIO()
    call_command("prune_usage", "--older-than", "7", stdout=out)
    assert "raw usage is kept from" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("prune_usage", "--older-than", "0")
    with pytest.raises(CommandError):
        call_command("prune_usage", "--older-than", "3", "--batch-size", "0")


def test_the_daily_rollup_task_prunes_when_retention_is_set(history, settings, frozen_now):
    settings.LLM_USAGE_RETENTION_DAYS = None
    tasks.roll_up_usage.call()
    count = UsageLog.objects.count()
    assert UsageRollupState.objects.get().rolled_until == NOW.date()
    assert UsageLog.objects.filter(created_at__lt=at(10, 0)).exists()  # off: kept

    settings.LLM_USAGE_RETENTION_DAYS = 10
    tasks.roll_up_usage.call()
    assert not UsageLog.objects.filter(created_at__lt=at(10, 0)).exists()
    assert UsageLog.objects.filter(created_at__gte=at(10, 0)).exists()
    assert UsageLog.objects.count() < count


def test_with_retention_on_healthz_queues_the_daily_task_once(
    client, settings, django_capture_on_commit_callbacks
):
    settings.LLM_USAGE_RETENTION_DAYS = 30
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.get("/healthz").status_code == 200
    task = DBTaskResult.objects.get()
    assert task.task_path == "llm_providers.usage.tasks.roll_up_usage"
    assert task.status == "READY"  # queued for the worker, not run by the probe


def test_with_retention_off_healthz_queues_nothing(client, settings):
    settings.LLM_USAGE_RETENTION_DAYS = None
    assert client.get("/healthz").status_code == 200
    assert not DBTaskResult.objects.exists()
