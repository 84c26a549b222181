"""The thread hops a request makes under ASGI (config/serving/handler.py, threads.py).

Every sync step of a request served over ASGI crosses to a pooled thread and back, and the
/v1 usage INSERTs queue for the same WEB_THREADS threads. A warm /v1 chat call used to make
20 such hops, 18 of them Django's plumbing (the middlewares' process_* steps, the
request_started receivers, response.close()); /healthz waited for a pooled thread like
any sync view. These tests drive the ASGI application in process (the serving handler
behind the pooled threads, as config.asgi builds it) and count the hops.
"""

import asyncio
import threading
import time

import pytest
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import connection
from django.http import HttpResponseBase

from config.serving.handler import FOLLOWED_SOURCES, source_digest
from config.serving.threads import StickyThreadPool, _PerCall
from llm_providers import health
from llm_providers.models import UsageLog
from tests.support.asgi import (
    CHAT,
    HopLog,
    close_pool_connections,
    http_scope,
    request,
    run,
    served,
)
from tests.support.wire import openai_reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_gateway")]

STREAM = (
    'data: {"choices":[{"index":0,"delta":{"content":"O"}}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"content":"K"}}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    "data: [DONE]\n\n"
)
# What a warm call of a tenant without limits does on a pooled thread: nothing. Its
# admission and breaker are settled on the loop and its usage row goes to the process's
# writer thread (engine/calls.py, usage/writer.py; tests/llm_providers/test_loop_path.py
# for the calls that do need a thread: limits, a transient failure).
OWN_WORK: list = []


def bearer(api_key):
    return [("authorization", f"Bearer {api_key.plain_key}")]


async def warm_then_count(app, log, send_one, warm=2):
    log.install(asyncio.get_running_loop())
    for _ in range(warm):  # caches (key, config, fallback policy, limits) and connections
        await send_one()
    log.clear()
    return await send_one()


def test_a_warm_v1_chat_call_takes_no_pooled_thread(provider, api_key):
    provider.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        openai_reply("OK")
    )
    app = served()
    log = HopLog(app)

    answer = run(
        warm_then_count(
            app,
            log,
            lambda: request(
                app, "POST", "/v1/chat/completions", json_body=CHAT, headers=bearer(api_key)
            ),
        )
    )

    assert answer.status == 200, answer.body
    assert answer.json()["choices"][0]["message"]["content"] == "OK"
    # The middlewares ran, on the loop: their headers are there.
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-request-id"]
    assert log.pool_hops() == OWN_WORK
    assert app.pool.busy == 0
    # …and its usage row is there all the same (written by the usage writer's thread).
    assert UsageLog.objects.filter(success=True).count() == 3  # two warm-ups, this one


def test_a_warm_streamed_v1_call_takes_no_pooled_thread(provider, api_key):
    from werkzeug import Response

    provider.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(STREAM, mimetype="text/event-stream")
    )
    app = served()
    log = HopLog(app)
    body = {**CHAT, "stream": True}

    answer = run(
        warm_then_count(
            app,
            log,
            lambda: request(
                app, "POST", "/v1/chat/completions", json_body=body, headers=bearer(api_key)
            ),
        )
    )

    assert answer.status == 200, answer.body
    assert b"data: [DONE]" in answer.body
    assert log.pool_hops() == OWN_WORK


def test_healthz_takes_no_pooled_thread(db):
    app = served()
    log = HopLog(app)

    answer = run(warm_then_count(app, log, lambda: request(app, "GET", "/healthz"), warm=1))

    assert answer.status == 200
    assert answer.json()["status"] == "ok"
    assert log.pool_hops() == []


def test_healthz_answers_while_every_pooled_thread_is_busy(db):
    """The bench's case: every sync-view thread busy (usage INSERTs) and the probe still
    answers, from its own thread."""
    app = served(size=1)
    holder = app.pool.lease()
    busy, free = threading.Event(), threading.Event()

    def hold_the_only_thread():
        busy.set()
        free.wait(30)

    async def scenario():
        holder.submit(hold_the_only_thread)
        assert await asyncio.to_thread(busy.wait, 10)
        try:
            async with asyncio.timeout(10):  # a probe waiting for the thread never answers
                return await request(app, "GET", "/healthz")
        finally:
            free.set()
            holder.release()

    answer = run(scenario())

    assert answer.status == 200
    assert answer.json()["checks"]["database"]["status"] == "ok"


def test_healthz_is_a_prompt_503_fail_when_its_checks_hang(db, settings, monkeypatch):
    settings.LLM_HEALTHZ_TIMEOUT_SECONDS = 0.2
    stuck, release = threading.Event(), threading.Event()
    real_check = health.database_check

    def hanging_database():
        if not release.is_set():
            stuck.set()
            release.wait(30)
        return real_check()

    monkeypatch.setattr(health, "database_check", hanging_database)
    app = served()

    async def scenario():
        hung = await request(app, "GET", "/healthz")
        second = await request(app, "GET", "/healthz")  # a check stuck too long: 503 at once
        release.set()
        deadline = time.monotonic() + 10
        while True:  # once the database answers again, so does the probe
            recovered = await request(app, "GET", "/healthz")
            if recovered.status == 200 or time.monotonic() > deadline:
                return hung, second, recovered
            await asyncio.sleep(0.01)

    hung, second, recovered = run(scenario())

    assert stuck.is_set()
    assert hung.status == 503
    assert hung.json() == {"status": "fail", "checks": {"database": {"status": "fail"}}}
    assert second.status == 503
    assert recovered.status == 200


def test_a_healthz_probe_with_a_recent_result_answers_in_one_step(db):
    """A probe answers from its checks' latest result without waiting: its coroutine runs
    to its end in one step, so under load it costs one turn of the loop, its start, not
    five (a wait for the checks' thread took three, its empty body one)."""
    app = served()

    async def one_probe():
        sent = []

        async def receive():  # the client stays (Django's disconnect listener waits here)
            if not sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        probe = app(http_scope("GET", "/healthz"), receive, send)
        waits = 0
        try:
            while True:
                probe.send(None)  # a yield: the probe waits for something
                waits += 1
                await asyncio.sleep(0)
        except StopIteration:
            return waits, sent

    async def scenario():
        first = await request(app, "GET", "/healthz")  # the first probe waits for a result
        return first, await one_probe()

    first, (waits, sent) = run(scenario())

    assert first.status == 200
    assert waits == 0
    assert sent[0]["status"] == 200


def test_healthz_answers_the_latest_result_while_a_check_runs(db, settings, monkeypatch):
    settings.LLM_HEALTHZ_INTERVAL_SECONDS = 0.05
    settings.LLM_HEALTHZ_TIMEOUT_SECONDS = 5
    stuck, release, slow = threading.Event(), threading.Event(), threading.Event()
    real_check = health.database_check

    def database():
        if slow.is_set() and not release.is_set():
            stuck.set()
            release.wait(30)
        return real_check()

    monkeypatch.setattr(health, "database_check", database)
    app = served()

    async def scenario():
        first = await request(app, "GET", "/healthz")
        slow.set()
        assert await asyncio.to_thread(stuck.wait, 10)  # the next check is under way
        try:
            async with asyncio.timeout(2):  # a probe waiting for that check takes 5 s
                return first, await request(app, "GET", "/healthz")
        finally:
            release.set()

    first, during = run(scenario())

    assert first.status == 200
    assert during.status == 200
    assert during.json() == first.json()  # the latest result, as it was


def test_after_a_pause_in_probes_the_checks_stop_and_the_next_probe_waits_for_new_ones(
    db, settings, monkeypatch
):
    settings.LLM_HEALTHZ_INTERVAL_SECONDS = 0.05
    settings.LLM_HEALTHZ_TIMEOUT_SECONDS = 0.2
    monkeypatch.setattr(health.monitor, "IDLE_AFTER", 0.3)
    validation = {"status": "not_run"}
    monkeypatch.setattr(health, "validation_check", lambda: dict(validation))
    app = served()

    def checks_thread_alive():
        return any(t.name == "healthz" for t in threading.enumerate())

    async def scenario():
        before = await request(app, "GET", "/healthz")
        assert checks_thread_alive()
        deadline = time.monotonic() + 10
        while checks_thread_alive():  # no probes: the checks stop
            assert time.monotonic() < deadline, "the checks went on without probes"
            await asyncio.sleep(0.05)
        # Its last result, from just before it stopped, now older than interval + timeout.
        await asyncio.sleep(0.3)
        validation["status"] = "off"  # what a check would now find
        return before, await request(app, "GET", "/healthz")

    before, after = run(scenario())

    assert before.json()["checks"]["validation"] == {"status": "not_run"}
    # Not the result of before the pause: the probe waited for a check of its own.
    assert after.json()["checks"]["validation"] == {"status": "off"}


def test_healthz_has_spooled_rows_written_back_on_a_thread_of_its_own(
    db, settings, tmp_path, monkeypatch
):
    """A probe that finds spooled rows answers `degraded` at once; the rows are replayed
    in the background, off the loop and off the pool; the next probes say `ok`."""
    settings.LLM_HEALTHZ_INTERVAL_SECONDS = 0.05  # the checks run again soon
    settings.LLM_USAGE_SPOOL_DIR = str(tmp_path)
    spooled = tmp_path / "usage-1.jsonl"
    spooled.write_text("{}\n")
    replaying, release = threading.Event(), threading.Event()
    replayed_on = []

    def replay():
        replayed_on.append(threading.current_thread().name)
        replaying.set()
        release.wait(30)
        spooled.unlink()
        return 1

    monkeypatch.setattr(health.spool, "replay", replay)
    app = served()

    async def scenario():
        first = await request(app, "GET", "/healthz")  # answered while the replay runs
        assert await asyncio.to_thread(replaying.wait, 10)
        release.set()
        deadline = time.monotonic() + 10
        while True:
            later = await request(app, "GET", "/healthz")
            if later.json()["checks"]["usage_writes"]["status"] == "ok":
                return first, later
            assert time.monotonic() < deadline, later.json()
            await asyncio.sleep(0.01)

    first, later = run(scenario())

    assert first.status == 200
    assert first.json()["checks"]["usage_writes"] == {
        "status": "degraded",
        "spool_files": 1,
        "failing": False,
    }
    assert later.json()["status"] == "ok"
    assert replayed_on == [replayed_on[0]] and replayed_on[0].startswith("healthz-replay")


def test_a_pooled_thread_replaces_an_obsolete_connection_before_its_next_call(db):
    """What close_old_connections did on Django's request_started, the pool does before
    each call: a connection past CONN_MAX_AGE is closed, a good one is kept."""
    from asgiref.sync import ThreadSensitiveContext, sync_to_async

    pool = StickyThreadPool(1)
    per_call = _PerCall(pool)

    def use_connection(expire):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        raw = connection.connection
        if expire:
            connection.close_at = time.monotonic() - 1  # as CONN_MAX_AGE's expiry does
        return raw, threading.get_ident()  # the object itself: an id may be reused

    async def scenario():
        async with ThreadSensitiveContext(executor=per_call):
            call = sync_to_async(use_connection)
            return [await call(False), await call(True), await call(False)]

    (first, thread1), (kept, thread2), (replaced, thread3) = run(scenario())
    close_pool_connections(pool)  # the thread's connection, closed for the database's teardown

    assert thread1 == thread2 == thread3  # one pooled thread
    assert kept is first  # a good connection is reused
    assert replaced is not kept  # the expired one was closed before the third call


def test_a_host_projects_own_request_signal_receivers_still_run_for_v1(db):
    seen = []

    def started(sender, **kwargs):
        seen.append(("started", threading.current_thread().name))

    def finished(sender, **kwargs):
        seen.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        answer = run(request(served(), "GET", "/v1/no/such/path"))
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

    assert answer.status == 404
    assert [event for event, _ in seen] == ["started", "finished"]
    assert all(name.startswith("sync-view") for _, name in seen)  # sync: on a thread


def test_a_sync_view_keeps_djangos_request_signals_on_its_own_thread(db):
    seen = []

    def record(sender, **kwargs):
        seen.append(threading.get_ident())

    signals.request_started.connect(record)
    signals.request_finished.connect(record)
    try:
        answer = run(request(served(), "GET", "/admin/login/"))
    finally:
        signals.request_started.disconnect(record)
        signals.request_finished.disconnect(record)

    assert answer.status == 200
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0] != threading.get_ident()


def test_the_admin_login_works_through_the_serving_handler(db, django_user_model):
    """CSRF checked on a thread (a POST to a view that is not exempt), the session saved
    and the messages stored on the request's thread: the steps that need one."""
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-passphrase")
    app = served()

    async def scenario():
        page = await request(app, "GET", "/admin/login/")
        token = page.cookies["csrftoken"]
        form = f"username=ops&password=a-long-passphrase&csrfmiddlewaretoken={token}&next=/admin/"
        headers = [
            ("cookie", f"csrftoken={token}"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("referer", "http://testserver/admin/login/"),
        ]
        refused = await request(
            app, "POST", "/admin/login/", body=form.encode(), headers=headers[1:]
        )
        login = await request(app, "POST", "/admin/login/", body=form.encode(), headers=headers)
        session = login.cookies.get("sessionid", "")
        admin = await request(app, "GET", "/admin/", headers=[("cookie", f"sessionid={session}")])
        return refused, login, admin

    refused, login, admin = run(scenario())

    assert refused.status == 403  # no CSRF cookie
    assert login.status == 302, login.body[:500]
    assert login.cookies.get("sessionid")
    assert admin.status == 200


def test_the_django_code_the_serving_handler_follows_is_unchanged():
    """ServingASGIHandler.handle, its _close and the gateway's get_response_async and
    resolve_request follow Django's ASGIHandler.handle, HttpResponseBase.close and
    BaseHandler's two: after a Django upgrade that changes any, read the new code and
    follow it in config/serving/handler.py, then update the digests there."""
    assert FOLLOWED_SOURCES["ASGIHandler.handle"][0] is ASGIHandler.handle
    assert FOLLOWED_SOURCES["HttpResponseBase.close"][0] is HttpResponseBase.close
    assert FOLLOWED_SOURCES["BaseHandler.get_response_async"][0] is (BaseHandler.get_response_async)
    assert FOLLOWED_SOURCES["BaseHandler.resolve_request"][0] is BaseHandler.resolve_request
    for name, (function, digest) in FOLLOWED_SOURCES.items():
        assert source_digest(function) == digest, name


def test_a_middleware_step_that_would_read_or_write_goes_to_the_thread(rf, settings):
    """The rules that keep a step off the loop: a session read or changed, messages read
    or added, CSRF_USE_SESSIONS, a CSRF check of an unsafe request to a view not exempt."""
    from django.contrib.messages.storage import default_storage
    from django.contrib.sessions.backends.db import SessionStore

    from config.serving.handler import (
        OnLoopCsrfViewMiddleware,
        OnLoopMessageMiddleware,
        OnLoopSessionMiddleware,
    )

    def noop(request):
        raise AssertionError("not called")

    request = rf.get("/")
    request.session = SessionStore()
    sessions = OnLoopSessionMiddleware(noop)
    assert sessions.response_on_loop(request, None)  # untouched: nothing to save
    request.session["seen"] = True
    assert not sessions.response_on_loop(request, None)  # changed: saved on the thread
    settings.SESSION_SAVE_EVERY_REQUEST = True
    untouched = rf.get("/")
    untouched.session = SessionStore()
    assert not sessions.response_on_loop(untouched, None)  # saved every request: thread
    settings.SESSION_SAVE_EVERY_REQUEST = False

    messages = OnLoopMessageMiddleware(noop)
    fresh = rf.get("/")
    fresh.session = SessionStore()
    fresh._messages = default_storage(fresh)
    assert messages.response_on_loop(fresh, None)
    fresh._messages.add(20, "saved")
    assert not messages.response_on_loop(fresh, None)  # added: stored on the thread

    csrf = OnLoopCsrfViewMiddleware(noop)
    assert csrf.request_on_loop(rf.get("/")) and csrf.response_on_loop(rf.get("/"), None)
    settings.CSRF_USE_SESSIONS = True
    assert not csrf.request_on_loop(rf.get("/"))
    assert not csrf.response_on_loop(rf.get("/"), None)
