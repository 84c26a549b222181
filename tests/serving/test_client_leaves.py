"""A /v1 request whose client leaves, through the serving handler (config/serving/handler.py).

The handler listens for the client's `http.disconnect` while the view runs, as Django's
does: a client that leaves cancels its call, and the call's usage row says so. Unlike
Django's, it does so without leaving the request, its response and its body in a reference
cycle for the garbage collector. These tests drive the ASGI application in process, with
the client's messages scripted.
"""

import asyncio
import gc
import json
import threading

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBase
from werkzeug import Response

from config.serving.handler import ServingASGIHandler
from llm_providers.models import UsageLog
from tests.support.asgi import CHAT, client, http_scope, request, run, served
from tests.support.wire import openai_reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_gateway")]


@pytest.fixture
def slow_provider(provider):
    """A provider that holds each answer until released; `answering` is set once a call
    has reached it."""
    answering, release = threading.Event(), threading.Event()

    def slow(request):
        answering.set()
        release.wait(10)
        return Response(json.dumps(openai_reply("Too late.")), mimetype="application/json")

    provider.expect_request("/v1/chat/completions", method="POST").respond_with_handler(slow)
    provider.answering = answering
    yield provider
    release.set()


def chat_scope(api_key) -> tuple[dict, bytes]:
    body = json.dumps(CHAT).encode()
    headers = [("authorization", f"Bearer {api_key.plain_key}")]
    headers.append(("content-type", "application/json"))
    return http_scope("POST", "/v1/chat/completions", body=body, headers=headers), body


def once_set(event: threading.Event, message: dict):
    """`then` for tests.support.asgi.client(): `message` once `event` is set."""

    async def then():
        await asyncio.to_thread(event.wait, 10)
        return message

    return then


# What a request whose client left sends: for the access log, to a closed connection.
LEFT = [
    {"type": "http.response.start", "status": 499, "headers": []},
    {"type": "http.response.body", "body": b""},
]


async def never():
    """`then` for tests.support.asgi.client(): the client stays until the request ends."""
    await asyncio.Event().wait()


def test_a_client_that_leaves_cancels_its_call_and_its_row_says_so(slow_provider, api_key):
    app = served()
    scope, body = chat_scope(api_key)
    receive, send, sent = client(
        body, then=once_set(slow_provider.answering, {"type": "http.disconnect"})
    )

    run(app(scope, receive, send))  # returns: a client leaving is no error

    # Nothing was answered (the view did not wait for the provider) but the 499 that the
    # server's access log shows: the client closed the request.
    assert sent == LEFT
    row = UsageLog.objects.get()
    assert row.success is False
    assert row.metadata["client_disconnected"] is True


def test_a_request_cancelled_from_outside_stays_cancelled(slow_provider, api_key):
    """Shutdown cancels the request's task: that is not a client leaving, and the
    cancellation reaches the server as it does with Django's handler."""
    app = served()
    scope, body = chat_scope(api_key)
    receive, send, sent = client(body, then=never)

    async def scenario():
        task = asyncio.ensure_future(app(scope, receive, send))
        assert await asyncio.to_thread(slow_provider.answering.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())

    assert sent == []
    assert UsageLog.objects.get().success is False


def test_an_unexpected_message_after_the_body_is_raised_as_django_raises_it(slow_provider, api_key):
    app = served()
    scope, body = chat_scope(api_key)
    receive, send, _ = client(
        body, then=once_set(slow_provider.answering, {"type": "websocket.receive"})
    )

    with pytest.raises(AssertionError, match="Invalid ASGI message"):
        run(app(scope, receive, send))


def test_a_listener_that_returns_leaves_the_view_alone(provider, api_key, monkeypatch):
    """Under `python -O` Django's listener returns on an unexpected message (its assert is
    gone): as in Django's task group, the view goes on and answers."""
    provider.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        openai_reply("OK")
    )

    async def returns(self, receive):
        await receive()

    monkeypatch.setattr(ServingASGIHandler, "listen_for_disconnect", returns)
    app = served()
    scope, body = chat_scope(api_key)

    async def at_once():  # while the view still runs
        return {"type": "websocket.receive"}

    receive, send, sent = client(body, then=at_once)

    run(app(scope, receive, send))

    assert sent[0]["status"] == 200
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["choices"]


async def cyclic_garbage(send_one, kinds) -> tuple[list[int], list[str]]:
    """The statuses of three requests made by `send_one` (after a warm one) and the names
    of the objects of `kinds` they left as cyclic garbage."""
    statuses = [(await send_one()).status]
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # unreachable objects are kept in gc.garbage
    try:
        for _ in range(3):
            statuses.append((await send_one()).status)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, kinds)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return statuses, left


def test_a_served_v1_call_leaves_no_reference_cycle_behind(provider, api_key):
    """Everything a request holds (its body buffer among it) is freed when it ends, not
    at the collector's next pass: Django's handler left ~70 objects of cyclic garbage per
    request, which at 1,024 open requests meant collector pauses of 50-250 ms."""
    provider.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        openai_reply("OK")
    )
    app = served()
    headers = [("authorization", f"Bearer {api_key.plain_key}")]

    statuses, left = run(
        cyclic_garbage(
            lambda: request(app, "POST", "/v1/chat/completions", json_body=CHAT, headers=headers),
            ASGIRequest | HttpResponseBase | BaseExceptionGroup,
        )
    )

    assert statuses == [200] * 4
    assert left == []


def test_a_sync_view_leaves_no_reference_cycle_of_the_handlers_behind(db):
    """The handler's part: the response and the exception group. (The admin's login view
    and Django's message storages hold the request in cycles of their own.)"""
    app = served()

    statuses, left = run(
        cyclic_garbage(
            lambda: request(app, "GET", "/admin/login/"), HttpResponseBase | BaseExceptionGroup
        )
    )

    assert statuses == [200] * 4
    assert left == []
