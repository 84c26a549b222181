"""Usage rows: the one INSERT of every LLM call, and the deleted-config fallback.

`insert_usage_log` avoids the ORM's per-call query compilation (bench/README.md): it is
built from the model's own metadata (table and column names, the fields' own value
conversion), runs through Django's connection and cursor (so transactions, the query log
and `django_assert_num_queries` all see it), and is plain SQL that SQLite and PostgreSQL
share. Tests check it agrees with the ORM. It sends no pre_save/post_save signals.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    router,
    transaction,
)
from django.db.models import Field
from django.utils import timezone

from ..models import ProviderConfig, UsageLog
from ..providers.base import TokenUsage
from . import spool
from .writer import writer

# Waits between attempts at a usage INSERT the database refused (locked, restarting,
# unreachable) before the row is spooled to disk instead (spool.py).
WRITE_RETRY_WAITS = (0.05, 0.2, 0.5)

logger = logging.getLogger(__name__)

_sqlite_writer = threading.Lock()  # one usage INSERT at a time per process on SQLite

_insert_sql: dict[tuple, str] = {}
# Rows per INSERT statement at most (and never more than the database's parameter limit).
MAX_ROWS_PER_INSERT = 64
_INSERT_FIELDS = [f for f in UsageLog._meta.concrete_fields if not f.primary_key]


def write_usage(**fields) -> int | None:
    """Write one call's usage row (see `usage_row` for the fields); its id, None if spooled."""
    return save_usage_row_durably(usage_row(**fields))


def usage_row(
    *,
    tenant_id,
    resolved,
    model,
    endpoint,
    success,
    usage,
    cost,
    latency_ms,
    error,
    status_code,
    metadata,
) -> UsageLog:
    """One call's usage row, unsaved."""
    tokens = usage or TokenUsage()
    row = UsageLog(
        tenant_id=tenant_id,
        provider_config_id=resolved.config.pk if resolved.config is not None else None,
        provider=resolved.provider or "",
        model=model or "",
        endpoint=endpoint,
        tokens_used=tokens.total_tokens,
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
        cache_read_tokens=tokens.cached_prompt_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        reasoning_tokens=tokens.reasoning_tokens,
        cost_usd=cost,
        latency_ms=latency_ms,
        success=success,
        error_type=error.type if error else "",
        error_message=error.message if error else "",
        status_code=status_code,
        metadata=without_nul(metadata),
    )
    # Provider-supplied strings (a model name, an error message, a request id) may hold
    # NUL, which PostgreSQL's text and jsonb cannot store (issue 15.6).
    row.model = without_nul(row.model)
    row.error_message = without_nul(row.error_message)
    return row


def without_nul(value):
    """`value` with NUL characters removed from every string in it (keys included)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def save_usage_row_durably(row: UsageLog) -> int | None:
    """`save_usage_row`, never losing the row: retried, then spooled (spool.py).

    Returns the new id, or None when the row went to the spool. Outside a transaction the
    row goes to this process's writer thread (writer.py), which commits the rows of
    concurrent calls together; the caller waits for its commit. Inside a caller's
    transaction it is written there, and nothing is retried (the transaction is broken):
    the error is raised.
    """
    if connections[router.db_for_write(UsageLog)].in_atomic_block:
        return save_usage_row(row)
    return writer.write(row)


def save_usage_rows_durably(rows: list[UsageLog]) -> list[int | None]:
    """Commit `rows` together (the writer's batch), retried, then spooled: their ids, None
    for each spooled row."""
    alias = router.db_for_write(UsageLog)
    conn = connections[alias]
    for wait in (*WRITE_RETRY_WAITS, None):
        try:
            if conn.vendor == "sqlite":
                # SQLite takes one writer at a time; the others spin in its busy handler,
                # which sleeps 1, 2, 5 … 100 ms between tries. A process's sync writers
                # inside transactions (and its spool replay) queue on this lock with its
                # writer thread, each woken the moment the previous one is done; only the
                # other processes' writers still meet the busy handler.
                with _sqlite_writer:
                    ids = save_usage_rows(rows)
            else:
                ids = save_usage_rows(rows)
        except (OperationalError, InterfaceError) as exc:
            spool.note_failure()
            logger.warning("usage write failed (%s)", type(exc).__name__)
            conn.close()  # the next attempt reconnects
            if wait is None:
                break
            time.sleep(wait)
            continue
        spool.note_success()
        spool.maybe_replay()
        return ids
    for row in rows:
        spool.spool_row(_row_values(row))
    return [None] * len(rows)


def save_usage_rows(rows: list[UsageLog]) -> list[int]:
    """Insert `rows` in one transaction, one statement per MAX_ROWS_PER_INSERT; if that
    fails on a foreign key (a config deleted during a call), each row on its own."""
    if len(rows) == 1:
        return [save_usage_row(rows[0])]
    alias = router.db_for_write(UsageLog)
    try:
        with transaction.atomic(using=alias):
            return insert_usage_logs(rows, own_transaction=True)
    except IntegrityError:
        return [save_usage_row(row) for row in rows]


def _row_values(row: UsageLog) -> dict:
    if row.created_at is None:  # refused before any INSERT filled it: the time it was due
        row.created_at = timezone.now()
    return {f.attname: getattr(row, f.attname) for f in _INSERT_FIELDS}


def spooled_row_stored(values: dict) -> bool:
    """Whether a spooled row is in the database already (written back by a replay that
    died before it removed its file)."""
    spool_id = (values.get("metadata") or {}).get("spool_id")
    return bool(spool_id) and UsageLog.objects.filter(metadata__spool_id=spool_id).exists()


def insert_spooled_row(values: dict) -> int:
    """Write back one spooled row, keeping its created_at (and, as any row, without its
    config if that was deleted meanwhile)."""
    return save_usage_row(UsageLog(**values), keep_created_at=True)


def save_usage_row(row: UsageLog, *, keep_created_at: bool = False) -> int:
    """Insert the row; if its config was deleted during the call, keep the row without it.

    A config can vanish while a call runs (a long call, or a caller such as the /v1 gateway
    holding it in a short cache while another process deletes it). The usage still
    happened: the row is written as on_delete=SET_NULL would have left it. (Inside a
    caller's transaction the deferred foreign key is only checked at its commit.)
    """
    try:
        return insert_usage_log(row, keep_created_at=keep_created_at)
    except IntegrityError:
        config_id = row.provider_config_id
        if (
            connection.in_atomic_block
            or config_id is None
            or ProviderConfig.objects.filter(pk=config_id).exists()
        ):
            raise
    logger.info(
        "provider config %s was deleted during a call; usage row kept without it", config_id
    )
    row.provider_config_id = None
    row.metadata = {**(row.metadata or {}), "provider_config_deleted": True}
    return insert_usage_log(row, keep_created_at=keep_created_at)


def insert_usage_log(row: UsageLog, *, keep_created_at: bool = False) -> int:
    """INSERT `row` (one statement) and return its new id."""
    return insert_usage_logs([row], keep_created_at=keep_created_at)[0]


def insert_usage_logs(
    rows: list[UsageLog], *, keep_created_at: bool = False, own_transaction: bool = False
) -> list[int]:
    """INSERT `rows` (one statement per MAX_ROWS_PER_INSERT) and return their new ids.

    With LLM_USAGE_ASYNC_COMMIT on PostgreSQL, outside a caller's transaction (or in the
    writer's own, `own_transaction`), the statement also sets `synchronous_commit = off`
    for its transaction alone: `set_config(…, true)` is transaction-local, and evaluating
    it in RETURNING keeps it one statement, one round trip. Its commit then does not wait
    for the WAL flush.
    """
    alias = router.db_for_write(UsageLog)
    connection = connections[alias]
    async_commit = (
        connection.vendor == "postgresql"
        and settings.LLM_USAGE_ASYNC_COMMIT
        and (own_transaction or not connection.in_atomic_block)
    )
    returning = connection.features.can_return_columns_from_insert
    per_statement = 1
    if len(rows) > 1 and connection.features.can_return_rows_from_bulk_insert:
        per_statement = min(
            MAX_ROWS_PER_INSERT,
            connection.ops.bulk_batch_size(_INSERT_FIELDS, rows) or 1,
        )
    ids: list[int] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = _insert_statement(connection, len(chunk), returning, async_commit)
        values = insert_values(chunk, connection, keep_created_at=keep_created_at)
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            if returning:
                chunk_ids = [fetched[0] for fetched in cursor.fetchall()]
            else:
                chunk_ids = [cursor.lastrowid]
        for row, pk in zip(chunk, chunk_ids, strict=True):
            row.pk = pk
            row._state.adding = False
            row._state.db = alias
        ids.extend(chunk_ids)
    return ids


def insert_values(rows: list[UsageLog], connection, *, keep_created_at: bool = False) -> list:
    """The INSERT's parameters for `rows`, field by field, as each field converts them."""
    steps = _field_steps(connection)
    values = []
    for row in rows:
        for f, pre_save, unchanged in steps:
            # pre_save fills auto_now_add; get_db_prep_save does the field's own
            # conversion, skipped for a value of a type it is known to pass unchanged.
            if pre_save and not keep_created_at:
                value = f.pre_save(row, True)
            else:  # Field.pre_save itself is this getattr
                value = getattr(row, f.attname)
            values.append(
                value if type(value) in unchanged else f.get_db_prep_save(value, connection)
            )
    return values


_steps: dict[tuple, list] = {}
# One value of each type a usage row holds besides dates, decimals and JSON.
_PROBES = (7, "text", True, None)


def _field_steps(connection) -> list[tuple]:
    """For each inserted field: the field, whether it has its own pre_save, and the value
    types its get_db_prep_save returns unchanged on this connection.

    Converting every value of a row through its field was a third of the row's Python
    time, and for most fields (an int for an integer column, a str for a text one) it
    gives back the very object it was given. Which types a field passes unchanged is
    asked of the field itself, on this database's connection, once: a value of such a
    type needs no conversion, any other value is converted by the field as before.
    """
    key = (connection.alias, connection.vendor)
    steps = _steps.get(key)
    if steps is None:
        steps = _steps[key] = [
            (f, type(f).pre_save is not Field.pre_save, _unchanged_types(f, connection))
            for f in _INSERT_FIELDS
        ]
    return steps


def _unchanged_types(field, connection) -> frozenset:
    return frozenset(type(probe) for probe in _PROBES if _passes(field, probe, connection))


def _passes(field, probe, connection) -> bool:
    try:
        return field.get_db_prep_save(probe, connection) is probe
    except Exception:  # a value this field refuses is not one it passes unchanged
        return False


def _insert_statement(connection, rows: int, returning: bool, async_commit: bool) -> str:
    key = (connection.vendor, rows, returning, async_commit)
    sql = _insert_sql.get(key)
    if sql is None:
        q = connection.ops.quote_name
        one = f"({', '.join(['%s'] * len(_INSERT_FIELDS))})"
        sql = " ".join(
            [
                f"INSERT INTO {q(UsageLog._meta.db_table)}",
                f"({', '.join(q(f.column) for f in _INSERT_FIELDS)})",
                f"VALUES {', '.join([one] * rows)}",
            ]
        )
        if returning:
            sql += f" RETURNING {q(UsageLog._meta.pk.column)}"
            if async_commit:
                sql += ", set_config('synchronous_commit', 'off', true)"
        _insert_sql[key] = sql
    return sql
