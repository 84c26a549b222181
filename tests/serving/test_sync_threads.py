"""config/serving/threads.py: the bounded, reused threads sync views run on under ASGI."""

import asyncio
import threading

from asgiref.sync import sync_to_async

from config.serving.threads import SyncViewThreads

SCOPE = {"type": "http", "path": "/", "headers": []}


async def noop_receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def noop_send(message):
    pass


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


def test_one_request_runs_every_sync_call_on_one_thread_and_threads_are_reused():
    seen: list[set[int]] = []

    async def app(scope, receive, send):
        idents = set()
        for _ in range(3):
            idents.add(await sync_to_async(threading.get_ident)())
        seen.append(idents)

    served = SyncViewThreads(app, size=2)

    async def main():
        for _ in range(4):
            await served(SCOPE, noop_receive, noop_send)

    run(main())
    assert all(len(idents) == 1 for idents in seen)  # one thread per request
    assert len(set().union(*seen)) == 1  # one after the other: the same thread again
    assert served.pool.busy == 0


def test_at_most_size_threads_run_sync_code_and_the_others_wait_their_turn():
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    threads: set[int] = set()

    def blocking():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        release.wait(timeout=20)
        with lock:
            running -= 1

    async def app(scope, receive, send):
        await sync_to_async(blocking)()

    served = SyncViewThreads(app, size=2)

    async def main():
        tasks = [asyncio.create_task(served(SCOPE, noop_receive, noop_send)) for _ in range(6)]
        while served.pool.busy < 2:  # both threads taken; four requests wait
            await asyncio.sleep(0.01)
        assert not any(task.done() for task in tasks)
        release.set()
        await asyncio.gather(*tasks)

    run(main())
    assert most == 2
    assert len(threads) == 2


def test_an_async_request_is_served_while_every_thread_is_busy():
    release = threading.Event()
    order: list[str] = []

    async def app(scope, receive, send):
        if scope["path"] == "/sync":
            await sync_to_async(release.wait)(20)
            order.append("sync")
        else:
            order.append("async")  # no sync call: needs no thread

    served = SyncViewThreads(app, size=1)

    async def main():
        blocked = asyncio.create_task(served({**SCOPE, "path": "/sync"}, noop_receive, noop_send))
        while served.pool.busy < 1:
            await asyncio.sleep(0.01)
        await served({**SCOPE, "path": "/async"}, noop_receive, noop_send)
        release.set()
        await blocked

    run(main())
    assert order == ["async", "sync"]
