"""The two queries on every LLM call, without the ORM's per-call query compilation.

Measured (bench/README.md): the ORM versions cost ~0.6 ms (lookup) and ~0.2 ms (INSERT)
on SQLite, mostly compiling the query each time; these take ~0.1 ms each.
Both are built from the models' own metadata (table and column names, the fields' own
value conversion), run through Django's connection and cursor (so transactions, the
query log and `django_assert_num_queries` all see them), and are plain SQL that SQLite
and PostgreSQL share. Tests check they agree with the ORM.

Tenant scoping: `active_config` is the for_tenant(...).active() query, written out.
`insert_usage_log` sends no pre_save/post_save signals.
"""

from django.conf import settings
from django.db import connections, router

from tenants.models import Tenant

from .models import ProviderConfig, UsageLog

_insert_sql: dict[tuple[str, bool], tuple[str, bool]] = {}
_INSERT_FIELDS = [f for f in UsageLog._meta.concrete_fields if not f.primary_key]


def active_config(tenant_id: str) -> ProviderConfig | None:
    """The tenant's active config, with `tenant_is_active` set from the joined tenant row."""
    alias = router.db_for_read(ProviderConfig)
    connection = connections[alias]
    prepared = _select.get((alias, connection.vendor))
    if prepared is None:
        prepared = _select[(alias, connection.vendor)] = _prepare_select(connection)
    sql, converters = prepared
    with connection.cursor() as cursor:
        # At most one active config per tenant (a DB constraint): no ORDER BY / LIMIT.
        cursor.execute(sql, [tenant_id, True])
        row = cursor.fetchone()
    if row is None:
        return None
    # The conversions the ORM's compiler applies (backend's, then the field's own
    # from_db_value: UUIDs, datetimes, JSON, the key's decryption).
    values = list(row)
    for position, field_converters, expression in converters:
        value = values[position]
        for convert in field_converters:
            value = convert(value, expression, connection)
        values[position] = value
    config = ProviderConfig.from_db(alias, _CONFIG_ATTNAMES, values[:-1])
    config.tenant_is_active = bool(values[-1])
    return config


_CONFIG_FIELDS = ProviderConfig._meta.concrete_fields
_CONFIG_ATTNAMES = [f.attname for f in _CONFIG_FIELDS]
_select: dict[tuple[str, str], tuple[str, list]] = {}


def _prepare_select(connection) -> tuple[str, list]:
    q = connection.ops.quote_name
    table = ProviderConfig._meta.db_table
    columns = ", ".join(f"c.{q(f.column)}" for f in _CONFIG_FIELDS)
    tenant_pk = q(Tenant._meta.pk.column)
    tenant_fk = q(ProviderConfig._meta.get_field("tenant").column)
    # Only quoted identifiers from model metadata are interpolated; values are parameters.
    sql = " ".join(
        [
            f"SELECT {columns}, t.{q('is_active')}",
            f"FROM {q(table)} c",
            f"INNER JOIN {q(Tenant._meta.db_table)} t ON t.{tenant_pk} = c.{tenant_fk}",
            f"WHERE c.{tenant_fk} = %s AND c.{q('is_active')} = %s",
        ]
    )
    expressions = [f.get_col(table) for f in _CONFIG_FIELDS]
    expressions.append(Tenant._meta.get_field("is_active").get_col(Tenant._meta.db_table))
    converters = []
    for position, expression in enumerate(expressions):
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        if found:
            converters.append((position, found, expression))
    return sql, converters


def insert_usage_log(row: UsageLog) -> int:
    """INSERT `row` (one statement) and return its new id.

    With LLM_USAGE_ASYNC_COMMIT on PostgreSQL, outside a caller's transaction, the
    statement (its own transaction) also sets `synchronous_commit = off` for itself alone:
    `set_config(…, true)` is transaction-local, and evaluating it in RETURNING keeps it
    one statement, one round trip. Its commit then does not wait for the WAL flush.
    """
    alias = router.db_for_write(UsageLog)
    connection = connections[alias]
    async_commit = (
        connection.vendor == "postgresql"
        and getattr(settings, "LLM_USAGE_ASYNC_COMMIT", False)
        and not connection.in_atomic_block
    )
    cached = _insert_sql.get((connection.vendor, async_commit))
    if cached is None:
        q = connection.ops.quote_name
        returning = connection.features.can_return_columns_from_insert
        sql = " ".join(
            [
                f"INSERT INTO {q(UsageLog._meta.db_table)}",
                f"({', '.join(q(f.column) for f in _INSERT_FIELDS)})",
                f"VALUES ({', '.join(['%s'] * len(_INSERT_FIELDS))})",
            ]
        )
        if returning:
            sql += f" RETURNING {q(UsageLog._meta.pk.column)}"
            if async_commit:
                sql += ", set_config('synchronous_commit', 'off', true)"
        cached = _insert_sql[(connection.vendor, async_commit)] = (sql, returning)
    sql, returning = cached
    # pre_save fills auto_now_add; get_db_prep_save does each field's own conversion.
    values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in _INSERT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    row._state.adding = False
    row._state.db = alias
    return row.pk
