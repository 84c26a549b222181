"""How the async engine runs the ORM: off the event loop, on the request's thread.

`run_db(fn, …)` is `sync_to_async(fn, thread_sensitive=True)`: under the ASGI server each
request's sync work runs on one pooled thread it leases for its length
(config/serving/threads.py), with that thread's kept database connection; in tests and
under `async_to_sync` it runs on the calling thread (the test's transaction). It is never
run on the loop, so a SQLite busy wait (up to its busy timeout) or a slow PostgreSQL
commit stalls this request alone, never the other requests on the loop. (psycopg's async
driver would cover PostgreSQL only, and Django's ORM does not use it: the INSERT would be
a second copy of usage/writes.py's SQL.)

The async methods reach the database at most twice: the tenant's resolution (once per
service instance, or never with the /v1 cache warm) and the usage row at the end.
"""

from asgiref.sync import sync_to_async


async def run_db(fn, /, *args, **kwargs):
    return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)
