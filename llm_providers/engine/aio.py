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

`on_server_pool()` says whether this request is served by the ASGI server's pooled
threads (config/serving/threads.py sets it). There, no sync code of the request can be
inside a caller's transaction, so a call that needs no other I/O hands its usage row to
the process's writer thread (usage/writer.py) straight from the loop and awaits it: no
thread of the pool is taken at all. Elsewhere (tests, `async_to_sync` callers, whose
sync work runs on a thread that may hold a transaction) the row is written on that
thread, as before.
"""

import asyncio
import contextvars

from asgiref.sync import sync_to_async

from ..errors import ErrorType, ProviderError

_on_server_pool: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "switchyard_on_server_pool", default=False
)


def on_server_pool() -> bool:
    return _on_server_pool.get()


def serve_on_pool() -> contextvars.Token:
    """Mark the current context (one ASGI request) as served by the server's thread pool."""
    return _on_server_pool.set(True)


def reset_pool_mark(token: contextvars.Token) -> None:
    _on_server_pool.reset(token)


async def run_db(fn, /, *args, **kwargs):
    return await sync_to_async(fn, thread_sensitive=True)(*args, **kwargs)


async def run_db_to_end(fn, /, *args, **kwargs):
    """`run_db` that a cancellation cannot stop: the call runs to its end, then the
    cancellation (if any) is raised."""
    return await to_end(run_db(fn, *args, **kwargs))


async def to_end(awaitable):
    """Await `awaitable` to its end even when the awaiting task is cancelled, then raise
    the cancellation (if any)."""
    task = asyncio.ensure_future(awaitable)
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
    an EmbedCall): anything with `afinish(error=, extra_metadata=)` that writes its row
    to its end."""
    try:
        return await sending
    except asyncio.CancelledError:
        await call.afinish(
            error=ProviderError(ErrorType.CONNECTION, CLIENT_LEFT),
            extra_metadata={"client_disconnected": True, "cancelled": True},
        )
        raise
