"""The two queries on every LLM call, without the ORM's per-call query compilation.

Measured (bench/README.md): compiling and running the ORM versions cost ~0.6 ms for the
config lookup and ~0.2 ms for the INSERT on SQLite; these take ~0.15 ms and ~0.09 ms.
Both are built from the models' own metadata (table and column names, the fields' own
value conversion), run through Django's connection and cursor (so transactions, the
query log and `django_assert_num_queries` all see them), and are plain SQL that SQLite
and PostgreSQL share. Tests check they agree with the ORM.

Tenant scoping: `active_config` is the for_tenant(...).active() query, written out.
`insert_usage_log` sends no pre_save/post_save signals.
"""

from django.db import connections, router

from tenants.models import Tenant

from .models import ProviderConfig, UsageLog

_select_sql: dict[str, str] = {}
_insert_sql: dict[str, tuple[str, bool]] = {}
_INSERT_FIELDS = [f for f in UsageLog._meta.concrete_fields if not f.primary_key]


def active_config(tenant_id: str) -> ProviderConfig | None:
    """The tenant's active config, with `tenant_is_active` set from the joined tenant row."""
    alias = router.db_for_read(ProviderConfig)
    connection = connections[alias]
    sql = _select_sql.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        columns = ", ".join(f"c.{q(f.column)}" for f in ProviderConfig._meta.concrete_fields)
        tenant_pk = q(Tenant._meta.pk.column)
        tenant_fk = q(ProviderConfig._meta.get_field("tenant").column)
        # Only quoted identifiers from model metadata are interpolated; values are parameters.
        sql = _select_sql[connection.vendor] = " ".join(
            [
                f"SELECT {columns}, t.{q('is_active')} AS tenant_is_active",
                f"FROM {q(ProviderConfig._meta.db_table)} c",
                f"INNER JOIN {q(Tenant._meta.db_table)} t ON t.{tenant_pk} = c.{tenant_fk}",
                f"WHERE c.{tenant_fk} = %s AND c.{q('is_active')} = %s",
            ]
        )
    # At most one active config per tenant (a DB constraint), so no ORDER BY / LIMIT.
    found = list(ProviderConfig.objects.db_manager(alias).raw(sql, [tenant_id, True]))
    return found[0] if found else None


def insert_usage_log(row: UsageLog) -> int:
    """INSERT `row` (one statement) and return its new id."""
    alias = router.db_for_write(UsageLog)
    connection = connections[alias]
    cached = _insert_sql.get(connection.vendor)
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
        cached = _insert_sql[connection.vendor] = (sql, returning)
    sql, returning = cached
    # pre_save fills auto_now_add; get_db_prep_save does each field's own conversion.
    values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in _INSERT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    row._state.adding = False
    row._state.db = alias
    return row.pk
