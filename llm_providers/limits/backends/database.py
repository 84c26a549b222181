"""Admission counters in the database: one counters row per tenant, one row per hold.

Reserve is one conditional UPDATE (`… WHERE <every limit still holds>`) of the tenant's
counters row plus the INSERT of its hold, atomically:
- PostgreSQL: one statement (a data-modifying CTE). Concurrent UPDATEs of the row queue on
  its row lock, and under READ COMMITTED each re-checks its WHERE against the row as the
  previous one committed it, so the checks never see stale counters.
- SQLite: both statements inside `BEGIN IMMEDIATE` (the project's transaction_mode), which
  takes the database's write lock first: reservations are serialised.
Settle deletes the hold and corrects the counters by (actual − reserved) the same way.

On PostgreSQL these statements commit with `synchronous_commit = off` (outside a caller's
transaction): counters are derived state that reconciliation rebuilds from the usage
rows, so a database crash losing their last fraction of a second is harmless, and
atomicity and isolation are unaffected (bench/README.md: why).

Also on PostgreSQL, these two statements run on a server-side-binding psycopg cursor over
Django's own connection (same transaction), as prepared statements: Django's
client-side-binding cursor spent ~2 ms on their ~30 parameters and re-planning, ten times
the statement itself (bench/README.md). They are therefore not in Django's query log. A
transaction-mode connection pooler in front of PostgreSQL must support prepared
statements (PgBouncer ≥ 1.21 with max_prepared_statements).
"""

from django.db import connections, router, transaction

from ...models import LimitCounters, LimitHold
from ..policy import Limits, Windows
from .base import Backend, Counters, Reservation, Usage

C = LimitCounters._meta.db_table
H = LimitHold._meta.db_table


def _pg_fetchone(connection, sql: str, params: list):
    """Execute on a server-side-binding cursor of Django's connection; the first row."""
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    # Prepared once per connection: parsing and planning these statements cost more than
    # running them. Django turns psycopg's automatic preparation off for the connection
    # (prepare_threshold=None, which also ignores prepare=True), so it is lifted for this
    # one execute only; Django's own queries stay unprepared.
    saved = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchone()
    finally:
        raw.prepare_threshold = saved


class DatabaseBackend(Backend):
    name = "database"

    def __init__(self):
        self._sql: dict = {}

    # -- helpers ---------------------------------------------------------------------------
    def _connection(self):
        return connections[router.db_for_write(LimitCounters)]

    @staticmethod
    def _greatest(connection) -> str:
        return "GREATEST" if connection.vendor == "postgresql" else "MAX"

    def _reserve_sql(self, connection, limits: Limits) -> str:
        key = ("reserve", connection.vendor, connection.in_atomic_block, self._shape(limits))
        sql = self._sql.get(key)
        if sql is not None:
            return sql
        cur_mr = "(CASE WHEN minute = %s THEN minute_requests ELSE 0 END)"
        cur_mt = "(CASE WHEN minute = %s THEN minute_tokens ELSE 0 END)"
        cur_dc = "(CASE WHEN day = %s THEN day_cost ELSE 0 END)"
        cur_mc = "(CASE WHEN month = %s THEN month_cost ELSE 0 END)"
        conditions = ["tenant_id = %s"]
        if limits.requests_per_minute is not None:
            conditions.append(f"{cur_mr} + 1 <= %s")
        if limits.tokens_per_minute is not None:
            conditions.append(f"{cur_mt} + %s <= %s")
        if limits.usd_per_day is not None:
            conditions.append(f"{cur_dc} + %s <= %s")
        if limits.usd_per_month is not None:
            conditions.append(f"{cur_mc} + %s <= %s")
        if limits.max_concurrent is not None:
            conditions.append("inflight + 1 <= %s")
        update = (
            f"UPDATE {C} SET minute_requests = {cur_mr} + 1, minute_tokens = {cur_mt} + %s, "
            f"day_cost = {cur_dc} + %s, month_cost = {cur_mc} + %s, "
            "minute = %s, day = %s, month = %s, inflight = inflight + 1 "
            f"WHERE {' AND '.join(conditions)} "
            "RETURNING tenant_id, minute_requests, minute_tokens, day_cost, month_cost, inflight"
        )
        if connection.vendor == "postgresql":
            async_commit = (
                ""
                if connection.in_atomic_block
                else (", set_config('synchronous_commit', 'off', true)")
            )
            sql = (
                f"WITH c AS ({update}), h AS ("
                f"INSERT INTO {H} (tenant_id, expires_at, minute, day, month, tokens, cost) "
                "SELECT tenant_id, %s, %s, %s, %s, %s, %s FROM c RETURNING id) "
                "SELECT (SELECT id FROM h), c.minute_requests, c.minute_tokens, c.day_cost, "
                f"c.month_cost, c.inflight{async_commit} FROM c"
            )
        else:
            sql = update
        self._sql[key] = sql
        return sql

    @staticmethod
    def _shape(limits: Limits) -> tuple:
        return tuple(
            v is not None
            for v in (
                limits.requests_per_minute,
                limits.tokens_per_minute,
                limits.usd_per_day,
                limits.usd_per_month,
                limits.max_concurrent,
            )
        )

    @staticmethod
    def _reserve_params(r: Reservation, limits: Limits, w: Windows) -> list:
        params = [w.minute, w.minute, r.tokens, w.day, r.cost, w.month, r.cost]
        params += [w.minute, w.day, w.month, r.tenant_id]
        if limits.requests_per_minute is not None:
            params += [w.minute, limits.requests_per_minute]
        if limits.tokens_per_minute is not None:
            params += [w.minute, r.tokens, limits.tokens_per_minute]
        if limits.usd_per_day is not None:
            params += [w.day, r.cost, limits.usd_per_day]
        if limits.usd_per_month is not None:
            params += [w.month, r.cost, limits.usd_per_month]
        if limits.max_concurrent is not None:
            params.append(limits.max_concurrent)
        return params

    # -- reserve ---------------------------------------------------------------------------
    def reserve(self, reservation: Reservation, limits: Limits, w: Windows):
        for attempt in range(3):
            hold_id, counters = self._try_reserve(reservation, limits, w)
            if hold_id is not None:
                return hold_id, counters
            if counters is None:  # no counters row yet: create it, then try again
                LimitCounters.objects.get_or_create(tenant_id=reservation.tenant_id)
                continue
            # Refused: expired holds (a crashed process's) may be what stands in the way.
            if attempt > 0 or not self.sweep(w, reservation.tenant_id):
                return None, counters
        return None, self.counters(reservation.tenant_id, w)

    def _try_reserve(self, r: Reservation, limits: Limits, w: Windows):
        connection = self._connection()
        sql = self._reserve_sql(connection, limits)
        params = self._reserve_params(r, limits, w)
        hold = [r.expires_at, w.minute, w.day, w.month, r.tokens, r.cost]
        if connection.vendor == "postgresql":
            row = _pg_fetchone(connection, sql, params + hold)
            if row is not None:
                return row[0], Counters(*row[1:6])
        else:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
                if row is not None:
                    cursor.execute(
                        f"INSERT INTO {H} (tenant_id, expires_at, minute, day, month, tokens, "
                        "cost) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [r.tenant_id, *hold],
                    )
                    return cursor.lastrowid, Counters(*row[1:6])
        counters = self._read(r.tenant_id, w)
        return None, counters

    # -- settle ----------------------------------------------------------------------------
    def settle(self, tenant_id: str, hold_id, tokens: int, cost: int, w: Windows) -> None:
        connection = self._connection()
        g = self._greatest(connection)
        sets = (
            f"minute_requests = (CASE WHEN c.minute = %s THEN c.minute_requests ELSE 0 END), "
            f"minute_tokens = {g}(0, (CASE WHEN c.minute = %s THEN c.minute_tokens ELSE 0 END)"
            " + %s - {held_tokens}), "
            f"day_cost = {g}(0, (CASE WHEN c.day = %s THEN c.day_cost ELSE 0 END) + %s"
            " - {held_day}), "
            f"month_cost = {g}(0, (CASE WHEN c.month = %s THEN c.month_cost ELSE 0 END) + %s"
            " - {held_month}), "
            "minute = %s, day = %s, month = %s, inflight = {inflight}"
        )
        actual = [w.minute, w.minute, tokens, w.day, cost, w.month, cost, w.minute, w.day, w.month]
        if connection.vendor == "postgresql":
            async_commit = (
                ""
                if connection.in_atomic_block
                else (", set_config('synchronous_commit', 'off', true)")
            )
            sql = self._sql.get(("settle", async_commit))
            if sql is None:
                body = sets.format(
                    held_tokens="(CASE WHEN h.minute = %s THEN h.tokens ELSE 0 END)",
                    held_day="(CASE WHEN h.day = %s THEN h.cost ELSE 0 END)",
                    held_month="(CASE WHEN h.month = %s THEN h.cost ELSE 0 END)",
                    inflight=f"{g}(0, c.inflight - 1)",
                )
                sql = self._sql[("settle", async_commit)] = (
                    f"WITH h AS (DELETE FROM {H} WHERE id = %s RETURNING tenant_id, minute, "
                    f"day, month, tokens, cost) UPDATE {C} c SET {body} FROM h "
                    f"WHERE c.tenant_id = h.tenant_id RETURNING 1{async_commit}"
                )
            params = [hold_id, w.minute, w.minute, tokens, w.minute, w.day, cost, w.day]
            params += [w.month, cost, w.month, w.minute, w.day, w.month]
            settled = _pg_fetchone(connection, sql, params) is not None
            if not settled:
                self._add_actual(connection, tenant_id, sets, actual)
            return
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {H} WHERE id = %s RETURNING minute, day, month, tokens, cost",
                [hold_id],
            )
            held = cursor.fetchone()
            if held is None:
                self._add_actual(connection, tenant_id, sets, actual)
                return
            h_minute, h_day, h_month, h_tokens, h_cost = held
            body = sets.format(
                held_tokens="%s", held_day="%s", held_month="%s", inflight=f"{g}(0, inflight - 1)"
            ).replace("c.", "")
            params = [w.minute, w.minute, tokens, h_tokens if h_minute == w.minute else 0]
            params += [w.day, cost, h_cost if h_day == w.day else 0]
            params += [w.month, cost, h_cost if h_month == w.month else 0]
            params += [w.minute, w.day, w.month]
            cursor.execute(f"UPDATE {C} SET {body} WHERE tenant_id = %s", [*params, tenant_id])

    def _add_actual(self, connection, tenant_id, sets, actual) -> None:
        """A hold that was already released (it expired): count the actual usage anyway."""
        body = sets.format(held_tokens="0", held_day="0", held_month="0", inflight="inflight")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {C} SET {body.replace('c.', '')} WHERE tenant_id = %s",
                [*actual, tenant_id],
            )

    # -- reads -----------------------------------------------------------------------------
    def _read(self, tenant_id: str, w: Windows) -> Counters | None:
        row = (
            LimitCounters.objects.filter(tenant_id=tenant_id)
            .values_list(
                "minute",
                "minute_requests",
                "minute_tokens",
                "day",
                "day_cost",
                "month",
                "month_cost",
                "inflight",
            )
            .first()
        )
        if row is None:
            return None
        minute, mr, mt, day, dc, month, mc, inflight = row
        same_minute = minute == w.minute
        return Counters(
            minute_requests=mr if same_minute else 0,
            minute_tokens=mt if same_minute else 0,
            day_cost=dc if day == w.day else 0,
            month_cost=mc if month == w.month else 0,
            inflight=inflight,
        )

    def counters(self, tenant_id: str, w: Windows) -> Counters:
        return self._read(tenant_id, w) or Counters()

    # -- expiry and reconciliation ---------------------------------------------------------
    def sweep(self, w: Windows, tenant_id: str | None = None) -> int:
        if tenant_id is None:
            tenants = (
                LimitHold.objects.filter(expires_at__lt=w.now)
                .values_list("tenant_id", flat=True)
                .distinct()
            )
            return sum(self.sweep(w, t) for t in list(tenants))
        connection = self._connection()
        with transaction.atomic(using=connection.alias):
            locked = list(
                LimitCounters.objects.select_for_update()
                .filter(tenant_id=tenant_id)
                .values_list("pk", flat=True)
            )
            expired = list(
                LimitHold.objects.filter(tenant_id=tenant_id, expires_at__lt=w.now).values_list(
                    "id", "minute", "day", "month", "tokens", "cost"
                )
            )
            if not expired:
                return 0
            LimitHold.objects.filter(id__in=[e[0] for e in expired]).delete()
            if locked:
                self._subtract(connection, tenant_id, expired, w)
        return len(expired)

    def _subtract(self, connection, tenant_id, holds, w: Windows) -> None:
        tokens = sum(h[4] for h in holds if h[1] == w.minute)
        day_cost = sum(h[5] for h in holds if h[2] == w.day)
        month_cost = sum(h[5] for h in holds if h[3] == w.month)
        g = self._greatest(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {C} SET "
                f"minute_tokens = CASE WHEN minute = %s THEN {g}(0, minute_tokens - %s) "
                "ELSE minute_tokens END, "
                f"day_cost = CASE WHEN day = %s THEN {g}(0, day_cost - %s) ELSE day_cost END, "
                f"month_cost = CASE WHEN month = %s THEN {g}(0, month_cost - %s) "
                "ELSE month_cost END, "
                f"inflight = {g}(0, inflight - %s) WHERE tenant_id = %s",
                [w.minute, tokens, w.day, day_cost, w.month, month_cost, len(holds), tenant_id],
            )

    def reconcile(self, tenant_id: str, usage: Usage, w: Windows):
        connection = self._connection()
        LimitCounters.objects.get_or_create(tenant_id=tenant_id)
        with transaction.atomic(using=connection.alias):
            LimitCounters.objects.select_for_update().filter(tenant_id=tenant_id).exists()
            before = self.counters(tenant_id, w)
            LimitHold.objects.filter(tenant_id=tenant_id, expires_at__lt=w.now).delete()
            live = list(
                LimitHold.objects.filter(tenant_id=tenant_id).values_list(
                    "minute", "day", "month", "tokens", "cost"
                )
            )
            after = Counters(
                minute_requests=usage.minute_requests + sum(1 for h in live if h[0] == w.minute),
                minute_tokens=usage.minute_tokens + sum(h[3] for h in live if h[0] == w.minute),
                day_cost=usage.day_cost + sum(h[4] for h in live if h[1] == w.day),
                month_cost=usage.month_cost + sum(h[4] for h in live if h[2] == w.month),
                inflight=len(live),
            )
            LimitCounters.objects.filter(tenant_id=tenant_id).update(
                minute=w.minute,
                day=w.day,
                month=w.month,
                minute_requests=after.minute_requests,
                minute_tokens=after.minute_tokens,
                day_cost=after.day_cost,
                month_cost=after.month_cost,
                inflight=after.inflight,
            )
        return before, after
