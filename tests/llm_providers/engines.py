"""Run one rule test on both paths: the sync engine and the async one (issue 9).

`engine` fixtures hand out "sync" or "async"; these helpers call the matching method with
the same arguments. The async call runs through `async_to_sync` from the test's thread,
so its database work (sync_to_async, thread-sensitive) runs on that thread, inside the
test's transaction, exactly as the ORM work of a request runs on its thread.
"""

from asgiref.sync import async_to_sync

from llm_providers.transport.asend import asend
from llm_providers.transport.asessions import aclose_sessions
from llm_providers.transport.send import send

ENGINES = ["sync", "async"]


def run_async(make_coroutine):
    async def main():
        try:
            return await make_coroutine()
        finally:
            await aclose_sessions()

    return async_to_sync(main)()


def completion(engine, service, *args, **kwargs):
    if engine == "sync":
        return service.generate_completion(*args, **kwargs)
    return run_async(lambda: service.agenerate_completion(*args, **kwargs))


def chat(engine, service, *args, **kwargs):
    if engine == "sync":
        return service.chat(*args, **kwargs)
    return run_async(lambda: service.achat(*args, **kwargs))


def stream(engine, service, *args, **kwargs):
    """(deltas, result) of a stream read to its end."""
    if engine == "sync":
        s = service.stream_chat(*args, **kwargs)
        deltas = list(s)
        s.close()
        return deltas, s.result

    async def read():
        s = await service.astream_chat(*args, **kwargs)
        deltas = [d async for d in s]
        await s.aclose()
        return deltas, s.result

    return run_async(read)


def send_spec(engine, spec, **kwargs):
    if engine == "sync":
        return send(spec, **kwargs)

    async def go():
        result = await asend(spec, **kwargs)
        if result.response is not None:
            result.response.close()
        return result

    return run_async(go)


def embed(engine, service, *args, **kwargs):
    if engine == "sync":
        return service.embed(*args, **kwargs)
    return run_async(lambda: service.aembed(*args, **kwargs))
