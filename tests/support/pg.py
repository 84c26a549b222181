"""Dropping a PostgreSQL database that tests made (processes.py, packaging/check_package.py)."""

import time


def drop_database(conn, name: str, *, timeout: float = 30.0) -> None:
    """DROP DATABASE `name` over `conn` (autocommit), whatever is still connected to it.

    WITH (FORCE) also ends the sessions a test's processes left behind. For a role that is
    neither a superuser nor in pg_signal_backend (CI's), it refuses when an autovacuum
    worker happens to be in the database, as one often is in a freshly migrated one: seen
    in CI as "must be a member of the role whose process is being terminated". The plain
    form then does it, for it stops autovacuum workers itself. Both are tried in turn
    until one succeeds, for at most `timeout` seconds.
    """
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            pass
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
