"""The per-process usage writer: concurrent calls' rows committed together, never lost.

Outside a caller's transaction a usage row goes to the process's writer thread
(llm_providers/usage/writer.py); these tests run outside the test transaction
(`transaction=True`), as the server does.
"""

import json
import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.forms.models import model_to_dict

from llm_providers.models import UsageLog
from llm_providers.usage import spool, writes
from llm_providers.usage.writer import UsageWriter, writer
from llm_providers.usage.writes import insert_usage_logs, save_usage_row_durably
from tests.factories import ProviderConfigFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _row(tenant_id, n=0, **fields) -> UsageLog:
    return UsageLog(
        tenant_id=tenant_id,
        provider="openai",
        model=f"gpt-4o-mini-{n}",
        endpoint="chat",
        tokens_used=n,
        prompt_tokens=n,
        latency_ms=10 + n,
        success=True,
        **fields,
    )


@pytest.fixture
def tenant_id():
    return TenantFactory(id="tenant_writer").pk


def test_a_multi_row_insert_round_trips_every_field_and_gives_each_row_its_id(tenant_id):
    config = ProviderConfigFactory(tenant_id=tenant_id, api_key="sk-test-fake-key-0001")
    rows = [
        _row(
            tenant_id,
            n,
            provider_config_id=config.pk,
            cost_usd=Decimal("0.00000480") * n,
            error_message=f"ünïcode {n}",
            metadata={"attempts": n, "nested": {"a": [n]}},
        )
        for n in range(1, 6)
    ]

    ids = insert_usage_logs(rows)

    assert ids == [row.pk for row in rows] and len(set(ids)) == 5
    for row in rows:
        stored = UsageLog.objects.get(pk=row.pk)
        assert model_to_dict(stored) == model_to_dict(row)  # each id is its own row's
        assert stored.created_at == row.created_at


def test_rows_queued_while_the_writer_commits_are_committed_together(tenant_id, monkeypatch):
    """The first row's commit is held; the 20 rows that arrive meanwhile make one batch."""
    held, release = threading.Event(), threading.Event()
    batches = []
    real = writes.save_usage_rows_durably

    def observed(rows):
        batches.append(len(rows))
        if len(batches) == 1:
            held.set()
            assert release.wait(10)
        return real(rows)

    monkeypatch.setattr(writes, "save_usage_rows_durably", observed)
    first = writer.submit(_row(tenant_id, 0))
    assert held.wait(10)
    rest = [writer.submit(_row(tenant_id, n)) for n in range(1, 21)]
    release.set()

    ids = [first.result(10)] + [f.result(10) for f in rest]

    assert batches == [1, 20]
    assert len(set(ids)) == 21 and None not in ids
    stored = dict(UsageLog.objects.values_list("pk", "tokens_used"))
    assert [stored[pk] for pk in ids] == list(range(21))  # each caller got its own row's id


def test_callers_in_many_threads_each_get_their_own_committed_row(tenant_id):
    rows_before, batches_before = writer.rows, writer.batches
    ids: list = [None] * 40
    start = threading.Barrier(40)

    def call(n):
        start.wait(10)
        ids[n] = save_usage_row_durably(_row(tenant_id, n))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert None not in ids and len(set(ids)) == 40
    stored = dict(UsageLog.objects.values_list("pk", "tokens_used"))
    assert [stored[pk] for pk in ids] == list(range(40))
    assert writer.rows - rows_before == 40
    assert writer.batches - batches_before <= 40


def test_a_config_deleted_during_the_calls_keeps_every_row_of_the_batch(tenant_id):
    kept = ProviderConfigFactory(tenant_id=tenant_id, api_key="sk-test-fake-key-0001")
    gone = ProviderConfigFactory(
        tenant_id=tenant_id, api_key="sk-test-fake-key-0002", is_active=False
    )
    gone_id = gone.pk
    gone.delete()
    rows = [
        _row(tenant_id, 1, provider_config_id=kept.pk),
        _row(tenant_id, 2, provider_config_id=gone_id),
        _row(tenant_id, 3, provider_config_id=kept.pk),
    ]

    ids = writes.save_usage_rows_durably(rows)

    stored = {r.pk: r for r in UsageLog.objects.all()}
    assert sorted(stored) == sorted(ids)
    assert [stored[pk].provider_config_id for pk in ids] == [kept.pk, None, kept.pk]
    assert stored[ids[1]].metadata == {"provider_config_deleted": True}


@pytest.fixture
def spool_dir(tmp_path, settings):
    settings.LLM_USAGE_SPOOL_DIR = str(tmp_path / "spool")
    spool._state.update(last_failure=0.0, last_replay=0.0, pending=None)
    yield tmp_path / "spool"
    spool._state.update(last_failure=0.0, last_replay=0.0, pending=None)


def test_rows_the_database_refuses_are_spooled_then_written_back(tenant_id, spool_dir, monkeypatch):
    def refused(rows):
        raise OperationalError("database is locked")

    monkeypatch.setattr(writes, "WRITE_RETRY_WAITS", (0, 0))
    monkeypatch.setattr(writes, "save_usage_rows", refused)
    rows = [_row(tenant_id, n) for n in (7, 8)]

    assert writes.save_usage_rows_durably(rows) == [None, None]

    assert UsageLog.objects.count() == 0
    assert spool.failing_now() and spool.is_degraded()
    (spooled,) = spool.pending_files()
    lines = [json.loads(line) for line in spooled.read_text().splitlines()]
    assert [line["tokens_used"] for line in lines] == [7, 8]
    created = [line["created_at"] for line in lines]

    monkeypatch.undo()  # the database takes writes again
    assert spool.replay() == 2

    stored = list(UsageLog.objects.order_by("pk"))
    assert [r.tokens_used for r in stored] == [7, 8]
    assert [r.created_at.isoformat() for r in stored] == [
        c.replace(" ", "T") for c in created
    ]  # each row keeps the time of its call
    assert spool.pending_files() == []


def test_a_refused_row_reaches_its_caller_as_spooled_and_the_next_write_replays_it(
    tenant_id, spool_dir, monkeypatch
):
    real = writes.save_usage_rows
    refusing = {"on": True}

    def flaky(rows):
        if refusing["on"]:
            raise OperationalError("server closed the connection unexpectedly")
        return real(rows)

    monkeypatch.setattr(writes, "WRITE_RETRY_WAITS", (0,))
    monkeypatch.setattr(writes, "save_usage_rows", flaky)

    assert save_usage_row_durably(_row(tenant_id, 1)) is None  # spooled, not lost
    refusing["on"] = False
    pk = save_usage_row_durably(_row(tenant_id, 2))

    assert sorted(UsageLog.objects.values_list("tokens_used", flat=True)) == [1, 2]
    assert UsageLog.objects.get(pk=pk).tokens_used == 2
    assert not spool.is_degraded()


def test_stop_writes_what_is_queued_and_closes_the_connection(tenant_id, monkeypatch):
    own = UsageWriter()
    held, release = threading.Event(), threading.Event()
    real = writes.save_usage_rows_durably

    def slow(rows):
        held.set()
        assert release.wait(10)
        return real(rows)

    monkeypatch.setattr(writes, "save_usage_rows_durably", slow)
    futures = [own.submit(_row(tenant_id, n)) for n in range(3)]
    assert held.wait(10)
    stopper = threading.Thread(target=own.stop)
    stopper.start()
    release.set()
    stopper.join(10)

    assert not stopper.is_alive()
    assert all(f.result(0) is not None for f in futures)
    assert UsageLog.objects.count() == 3


def test_inside_a_callers_transaction_the_row_is_written_there(tenant_id):
    from django.db import transaction

    rows_before = writer.rows
    with transaction.atomic():
        pk = save_usage_row_durably(_row(tenant_id, 5))
        assert connection.in_atomic_block
        transaction.set_rollback(True)

    assert pk is not None
    assert not UsageLog.objects.filter(pk=pk).exists()  # it shared the caller's fate
    assert writer.rows == rows_before  # the writer thread never saw it


def test_a_spooled_row_the_database_refuses_for_good_does_not_hold_back_the_others(
    tenant_id, spool_dir, monkeypatch
):
    def refused(rows):
        raise OperationalError("database is locked")

    monkeypatch.setattr(writes, "WRITE_RETRY_WAITS", ())
    monkeypatch.setattr(writes, "save_usage_rows", refused)
    writes.save_usage_rows_durably(
        [_row(tenant_id, 1), _row("tenant_deleted_meanwhile", 2), _row(tenant_id, 3)]
    )
    monkeypatch.undo()

    assert spool.replay() == 2

    assert sorted(UsageLog.objects.values_list("tokens_used", flat=True)) == [1, 3]
    assert spool.pending_files() == []
    (rejected,) = spool_dir.glob("*.rejected")
    assert json.loads(rejected.read_text())["tenant_id"] == "tenant_deleted_meanwhile"


def test_a_replay_that_died_midway_is_taken_over_without_writing_a_row_twice(
    tenant_id, spool_dir, monkeypatch
):
    def refused(rows):
        raise OperationalError("database is locked")

    monkeypatch.setattr(writes, "WRITE_RETRY_WAITS", ())
    monkeypatch.setattr(writes, "save_usage_rows", refused)
    writes.save_usage_rows_durably([_row(tenant_id, n) for n in (1, 2, 3)])
    monkeypatch.undo()
    # A replay claims the file, writes the first row back, and its process dies.
    (spooled,) = spool.pending_files()
    claimed = spooled.with_name(spooled.name.split(".")[0] + ".claimed-dead")
    spooled.rename(claimed)
    writes.insert_spooled_row(json.loads(claimed.read_text().splitlines()[0]))
    assert spool.pending_files() == []  # a fresh claim is someone's replay in progress

    monkeypatch.setattr(spool, "STALE_CLAIM_SECONDS", -1.0)  # …until it is stale
    assert spool.replay() == 2

    stored = UsageLog.objects.order_by("tokens_used")
    assert [r.tokens_used for r in stored] == [1, 2, 3]  # each row once
    assert len({r.metadata["spool_id"] for r in stored}) == 3
    assert spool.pending_files() == []
