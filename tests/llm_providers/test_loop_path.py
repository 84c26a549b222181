"""Under the ASGI server, a warm async call takes no thread: its admission, its breaker
and its usage row are settled on the loop (the row by the process's writer thread).

The calls run as the server runs them (config/serving/threads.py): in a context marked as
served by the pool, its thread-sensitive work going to an executor, here one that counts
what it is handed. Outside a test transaction (`transaction=True`), as on the server.
"""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.db import connections
from werkzeug import Response

from llm_providers.engine.aio import reset_pool_mark, serve_on_pool
from llm_providers.errors import ErrorType
from llm_providers.models import TenantLLMLimits, UsageLog
from llm_providers.services import LLMService
from llm_providers.transport.asessions import aclose_sessions
from llm_providers.usage import writes
from llm_providers.usage.writer import writer
from tests.support.wire import openai_reply

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


class CountingExecutor(ThreadPoolExecutor):
    """The pool's stand-in: one thread, counting the sync calls it is handed."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def served(make_coroutine, executor: CountingExecutor):
    """Run `make_coroutine()` as the server runs a request's view."""

    async def main():
        token = serve_on_pool()
        try:
            async with ThreadSensitiveContext(executor=executor):
                return await make_coroutine()
        finally:
            reset_pool_mark(token)
            await aclose_sessions()

    return asyncio.run(main())


@pytest.fixture
def executor():
    pool = CountingExecutor()
    yield pool
    pool.submit(connections.close_all).result(10)  # its thread's connection, not leaked
    pool.shutdown(wait=True)


@pytest.fixture
def upstream(httpserver, local_config_for):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("Hello."))
    return local_config_for(httpserver.url_for("/v1"))


def test_a_warm_call_takes_no_thread_and_its_row_goes_through_the_writer(upstream, executor):
    service = LLMService("tenant_123")
    first = served(lambda: service.achat(MESSAGES), executor)  # warms the caches
    assert first.success and executor.calls >= 1  # the resolution, the limits lookup
    executor.calls = 0
    rows_before = writer.rows

    results = [served(lambda: service.achat(MESSAGES), executor) for _ in range(3)]

    assert executor.calls == 0
    assert all(r.success for r in results)
    assert writer.rows - rows_before == 3
    stored = {row.pk: row for row in UsageLog.objects.all()}
    assert len(stored) == 4
    for result in results:
        row = stored[result.usage_log_id]
        assert (row.success, row.prompt_tokens, row.completion_tokens) == (
            True,
            result.prompt_tokens,
            result.completion_tokens,
        )


def test_a_warm_stream_takes_no_thread(upstream, httpserver, executor):
    httpserver.clear_all_handlers()
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    httpserver.expect_request(CHAT, method="POST").respond_with_response(
        Response(body, mimetype="text/event-stream")
    )
    service = LLMService("tenant_123")

    async def read():
        stream = await service.astream_chat(MESSAGES)
        text = "".join([d.text async for d in stream])
        await stream.aclose()
        return text, stream.result

    served(read, executor)
    executor.calls = 0

    text, result = served(read, executor)

    assert executor.calls == 0
    assert text == "Hello" and result.success
    row = UsageLog.objects.get(pk=result.usage_log_id)
    assert (row.prompt_tokens, row.completion_tokens) == (3, 2)


def test_a_tenant_with_limits_is_admitted_and_settled_on_a_thread(upstream, executor):
    TenantLLMLimits.objects.create(tenant_id="tenant_123", requests_per_minute=100)
    service = LLMService("tenant_123")
    served(lambda: service.achat(MESSAGES), executor)
    executor.calls = 0

    result = served(lambda: service.achat(MESSAGES), executor)

    assert result.success
    assert executor.calls == 2  # the reservation, then the settlement with the row
    assert UsageLog.objects.get(pk=result.usage_log_id).metadata["reserved_tokens"] > 0


def test_a_transient_failure_is_counted_by_the_breaker_on_a_thread(
    httpserver, local_config_for, executor, settings
):
    settings.LLM_MAX_RETRIES = 0
    httpserver.expect_request(CHAT, method="POST").respond_with_json(
        {"error": {"message": "boom"}}, status=500
    )
    local_config_for(httpserver.url_for("/v1"))
    service = LLMService("tenant_123")
    served(lambda: service.achat(MESSAGES), executor)
    executor.calls = 0

    result = served(lambda: service.achat(MESSAGES), executor)

    assert result.error.type == ErrorType.SERVER_ERROR
    assert executor.calls == 2  # the breaker's state read for admission, then its count
    from llm_providers.limits import breaker

    assert breaker.state(breaker.breaker_key(service.resolve()))["failures"] == 2
    assert UsageLog.objects.filter(success=False).count() == 2


def test_a_call_cancelled_while_its_row_waits_for_the_writer_keeps_it(
    upstream, executor, monkeypatch
):
    """The client leaves while the answered call's row is queued behind a slow commit:
    the cancellation waits for the row, and the row is written."""
    service = LLMService("tenant_123")
    served(lambda: service.achat(MESSAGES), executor)
    held, release = threading.Event(), threading.Event()
    real = writes.save_usage_rows_durably

    def slow(rows):
        held.set()
        assert release.wait(10)
        return real(rows)

    monkeypatch.setattr(writes, "save_usage_rows_durably", slow)

    async def leave_early():
        task = asyncio.ensure_future(service.achat(MESSAGES))
        deadline = asyncio.get_running_loop().time() + 10
        while not held.is_set():  # the row is in the writer's (held) commit
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.005)
        task.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()  # it waits for its row
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    served(leave_early, executor)

    assert UsageLog.objects.count() == 2
    assert UsageLog.objects.filter(success=True).count() == 2


def test_a_call_cancelled_while_the_provider_answers_keeps_a_row_saying_so(
    httpserver, local_config_for, executor
):
    """The client leaves while the provider is still working: the call is cancelled, and
    its row (failed, client_disconnected) is written from the loop all the same."""
    answering, release = threading.Event(), threading.Event()

    def slow(request):
        answering.set()
        release.wait(10)
        return Response(json.dumps(openai_reply("Too late.")), mimetype="application/json")

    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("Warm."))
    local_config_for(httpserver.url_for("/v1"))
    service = LLMService("tenant_123")
    served(lambda: service.achat(MESSAGES), executor)  # warm: the next call is on the loop
    httpserver.clear_all_handlers()
    httpserver.expect_request(CHAT, method="POST").respond_with_handler(slow)
    executor.calls = 0

    async def leave_early():
        task = asyncio.ensure_future(service.achat(MESSAGES))
        deadline = asyncio.get_running_loop().time() + 10
        while not answering.is_set():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    served(leave_early, executor)

    assert executor.calls == 0
    row = UsageLog.objects.order_by("-id").first()
    assert UsageLog.objects.count() == 2
    assert (row.success, row.metadata.get("client_disconnected")) == (False, True)
