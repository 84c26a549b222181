"""How the async engine runs the ORM: off the event loop, on the request's thread.

`run_db(fn, …)` is `sync_to_async(fn, thread_sensitive=True)`: under the ASGI server each
request's sync work runs on one pooled thread it leases for its length
(config/serving/threads.py), with that thread's kept database connection; in tests and
under `async_to_sync` it runs on the calling thread (the test's transaction). It is never
run on the loop, so a SQLite busy wait (up to its busy timeout) or a slow PostgreSQL
commit stalls this request alone, never the other requests on the loop. (psycopg's async
driver would cover PostgreSQL only, and Django's ORM does not use it: the INSERT would be
a second copy of usage/writes.py's SQL.)

`run_db_to_end(fn, …)` is for the usage row: once a provider has answered, the row must
be written even when the awaiting task is cancelled (the client left). A plain `run_db`
cancelled while its call still waits for a free pooled thread cancels the call itself
(asgiref cancels the executor's future, and a future not yet running never runs): under
load — every thread busy, the client gone — the row was silently lost (issue 9's
"usage rows ≠ answers"). Here the write runs in its own task, shielded; a cancellation
waits for the write to finish and then goes on.

The async methods reach the database at most twice: the tenant's resolution (once per
service instance, or never with the /v1 cache warm) and the usage row at the end.
"""

import asyncio

from asgiref.sync import sync_to_async

from ..errors import ErrorType, ProviderError


async def run_db(fn, /, *args, **kwargs):
    return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)


async def run_db_to_end(fn, /, *args, **kwargs):
    """`run_db` that a cancellation cannot stop: the call runs to its end, then the
    cancellation (if any) is raised."""
    task = asyncio.ensure_future(run_db(fn, *args, **kwargs))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # the write itself was cancelled (the loop is closing)
                raise
            cancelled = True  # the caller was cancelled: wait for the write first
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
    return result


CLIENT_LEFT = "The client went away before the provider answered; the call was cancelled."


async def cancellable(call, sending):
    """Await the provider call; if the task is cancelled (the client left), the transport
    has closed the connection (the provider sees the call end), and the usage row says
    so before the cancellation goes on. `call` is the call's record (a chat's CallRecord,
    an EmbedCall): anything with `finish(error=, extra_metadata=)`."""
    try:
        return await sending
    except asyncio.CancelledError:
        await run_db_to_end(
            call.finish,
            error=ProviderError(ErrorType.CONNECTION, CLIENT_LEFT),
            extra_metadata={"client_disconnected": True, "cancelled": True},
        )
        raise
