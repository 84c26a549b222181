"""The async path's own wire behaviour, and rules both paths share (issues 9, 15).

Real local servers (raw sockets where the bytes matter); nothing sleeps to synchronise:
the servers signal with events, and the tests wait on those with a bound.
"""

import asyncio
import json
import socket
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from werkzeug import Response

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from llm_providers.transport.asessions import aclose_sessions
from tests.support.processes import closed_port_url
from tests.support.wire import openai_reply

from . import engines

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(params=engines.ENGINES)
def engine(request):
    return request.param


class RawServer:
    """A one-thread TCP server: `handle(conn)` runs for each connection it accepts."""

    def __init__(self, handle, host="127.0.0.1"):
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.handle = handle
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        with conn:
            try:
                self.handle(conn)
            except OSError:
                pass

    def url(self, host="127.0.0.1"):
        return f"http://{host}:{self.port}/v1"

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.listener.close()


@pytest.fixture
def raw_server():
    servers = []

    def make(handle):
        servers.append(RawServer(handle))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        body += conn.recv(65536)
    return head


# -- the deadline bounds every read (issue 15.2) ------------------------------------------
def test_a_trickled_body_does_not_outlive_the_deadline(engine, raw_server, local_config_for):
    body = json.dumps(openai_reply("x" * 2000)).encode()
    stop = threading.Event()

    def trickle(conn):
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for byte in body:  # one byte every 20 ms: each read well within the read timeout
            if stop.wait(0.02):
                return
            conn.sendall(bytes([byte]))

    server = raw_server(trickle)
    local_config_for(server.url(), metadata={"deadline": 0.5, "timeout": 5})
    started = time.monotonic()

    result = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)

    elapsed = time.monotonic() - started
    stop.set()
    assert result.error.type == ErrorType.TIMEOUT
    assert elapsed < 3  # the body alone would take 40 s
    assert UsageLog.objects.get().error_type == "timeout"


# -- the base-URL check happens before connecting (issue 15.14) ---------------------------
def test_a_refused_address_receives_no_connection_and_one_message(
    engine, raw_server, local_config_for, settings
):
    server = raw_server(read_request)
    config = local_config_for(server.url())
    settings.LLM_BASE_URL_ALLOWLIST = []  # loopback is no longer allowed

    open_port = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)
    config.base_url = closed_port_url().rstrip("/")
    config.save()
    closed_port = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)

    assert server.accepted == 0  # not even a TCP handshake reached the refused address
    assert open_port.error.type == closed_port.error.type == ErrorType.CONFIGURATION
    assert open_port.error.message == closed_port.error.message
    assert open_port.attempts == 1


def test_a_host_name_is_resolved_and_every_address_checked_before_connecting(
    engine, raw_server, local_config_for, settings
):
    server = raw_server(read_request)
    local_config_for(server.url(host="localhost"))
    settings.LLM_BASE_URL_ALLOWLIST = ["::1/128"]  # localhost's 127.0.0.1 is refused

    result = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)

    assert result.error.type == ErrorType.CONFIGURATION
    assert "127.0.0.1" in result.error.message
    assert server.accepted == 0


def test_the_checked_address_is_connected_to_with_the_host_name_kept(
    engine, httpserver, local_config_for
):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("ok"))
    local_config_for(httpserver.url_for("/v1").replace("localhost", "127.0.0.1"))

    result = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)

    assert result.success and result.content == "ok"
    assert httpserver.log[0][0].headers["Host"].startswith("127.0.0.1:")


# -- streams (issue 15.9) -----------------------------------------------------------------
def test_a_stream_answered_with_plain_json_is_relayed(engine, httpserver, local_config_for):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("Plain."))
    local_config_for(httpserver.url_for("/v1"))

    deltas, result = engines.stream(engine, LLMService("tenant_123"), MESSAGES)

    assert "".join(d.text for d in deltas) == "Plain."
    assert result.success and result.finish_reason == "stop"
    assert result.completion_tokens == 5
    row = UsageLog.objects.get()
    assert row.success and row.metadata["stream_answered_with_json"] is True


def test_a_stream_answered_with_a_json_error_body_is_bad_response(
    engine, httpserver, local_config_for
):
    httpserver.expect_request(CHAT, method="POST").respond_with_json({"error": "nope"})
    local_config_for(httpserver.url_for("/v1"))

    deltas, result = engines.stream(engine, LLMService("tenant_123"), MESSAGES)

    assert not result.success and result.error.type == ErrorType.BAD_RESPONSE
    assert UsageLog.objects.get().error_type == "bad_response"


def test_a_stream_that_ends_without_any_event_is_never_a_success(
    engine, httpserver, local_config_for
):
    httpserver.expect_request(CHAT, method="POST").respond_with_response(
        Response(": keep-alive\n\n", mimetype="text/event-stream")
    )
    local_config_for(httpserver.url_for("/v1"))

    deltas, result = engines.stream(engine, LLMService("tenant_123"), MESSAGES)

    assert not result.success and result.error.type == ErrorType.BAD_RESPONSE
    assert "without sending any event" in result.error.message


def test_a_stream_has_a_time_bound(engine, raw_server, local_config_for, settings):
    settings.LLM_STREAM_MAX_SECONDS = 0.4
    stop = threading.Event()
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"."}}]}\n\n'

    def endless(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        while not stop.wait(0.02):  # a chunk every 20 ms, for ever
            conn.sendall(chunk)

    server = raw_server(endless)
    local_config_for(server.url(), metadata={"timeout": 5, "deadline": 30})
    started = time.monotonic()

    deltas, result = engines.stream(engine, LLMService("tenant_123"), MESSAGES)

    stop.set()
    assert time.monotonic() - started < 5
    assert result.error.type == ErrorType.TIMEOUT
    assert any(d.text for d in deltas)


# -- NUL in provider strings (issue 15.6) -------------------------------------------------
def test_nul_in_provider_strings_is_stripped_before_storing(
    engine, httpserver, local_config_for, settings
):
    settings.LLM_LOG_PROMPTS = True
    httpserver.expect_request(CHAT, method="POST").respond_with_json(
        openai_reply("a\x00b", model="gpt\x00-4o")
    )
    local_config_for(httpserver.url_for("/v1"))

    result = engines.completion(engine, LLMService("tenant_123"), "Hi", max_tokens=8)

    assert result.success
    row = UsageLog.objects.get()
    assert row.metadata["response"] == "ab"
    assert row.metadata["reported_model"] == "gpt-4o"


# -- a client that leaves cancels the call (issue 9) --------------------------------------
@pytest.mark.parametrize(
    "call, endpoint",
    [
        (lambda service: service.achat(MESSAGES), "chat"),
        (lambda service: service.aembed(["a"]), "embedding"),
    ],
    ids=["achat", "aembed"],
)
def test_a_cancelled_async_call_closes_the_provider_connection_and_says_so(
    call, endpoint, raw_server, local_config_for
):
    """One rule (engine/aio.cancellable) for chat and embeddings alike."""
    got_request, saw_close = threading.Event(), threading.Event()

    def hold(conn):
        read_request(conn)
        got_request.set()
        conn.settimeout(10)
        if conn.recv(1) == b"":  # the client closed the connection
            saw_close.set()

    server = raw_server(hold)
    local_config_for(server.url())

    async def scenario():
        task = asyncio.ensure_future(call(LLMService("tenant_123")))
        assert await asyncio.to_thread(got_request.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await aclose_sessions()

    async_to_sync(scenario)()

    assert saw_close.wait(10)  # the provider saw the call end at once
    row = UsageLog.objects.get()
    assert (row.endpoint, row.success, row.error_type) == (endpoint, False, "connection")
    assert row.metadata["client_disconnected"] is True and row.metadata["cancelled"] is True


def test_an_async_stream_closed_early_records_an_estimate(httpserver, local_config_for):
    chunks = "".join(
        f'data: {{"choices":[{{"index":0,"delta":{{"content":"{w} "}}}}]}}\n\n'
        for w in ["one", "two", "three"]
    )
    httpserver.expect_request(CHAT, method="POST").respond_with_response(
        Response(chunks + "data: [DONE]\n\n", mimetype="text/event-stream")
    )
    local_config_for(httpserver.url_for("/v1"))

    async def scenario():
        stream = await LLMService("tenant_123").astream_chat(MESSAGES)
        iterator = aiter(stream)
        first = await anext(iterator)
        await iterator.aclose()  # the client went away after the first delta
        await aclose_sessions()
        return first, stream.result

    first, result = async_to_sync(scenario)()

    assert first.text == "one "
    row = UsageLog.objects.get()
    assert row.metadata["client_disconnected"] is True
    assert row.metadata["completion_tokens_estimated"] is True
    assert row.completion_tokens == 1  # "one " is 4 characters: about one token
    assert result.usage_log_id == row.pk


@pytest.mark.django_db(transaction=True)
def test_an_answered_call_whose_client_leaves_while_its_row_waits_for_a_thread_keeps_it(
    httpserver, local_config_for
):
    """The money bug of issue 9: under load every pooled thread is busy, the provider has
    answered, the row's INSERT waits for a thread, and the client leaves. The cancelled
    wait must not cancel the write (it did: the queued call never ran, no row)."""
    from asgiref.sync import ThreadSensitiveContext

    from config.serving.threads import StickyThreadPool, _PerCall
    from tests.support.asgi import close_pool_connections

    pool = StickyThreadPool(1)  # the server's pool, one thread: easy to keep busy
    holder = pool.lease()
    busy, free = threading.Event(), threading.Event()

    def hold_the_only_thread():
        busy.set()
        free.wait(10)

    def answer(request):
        # The provider answers only once the pool's only thread is taken by someone else.
        holder.submit(hold_the_only_thread)
        assert busy.wait(10)
        return Response(json.dumps(openai_reply("Paid for.")), mimetype="application/json")

    httpserver.expect_request(CHAT, method="POST").respond_with_handler(answer)
    local_config_for(httpserver.url_for("/v1"))

    async def scenario():
        async with ThreadSensitiveContext(executor=_PerCall(pool)):
            task = asyncio.ensure_future(LLMService("tenant_123").achat(MESSAGES))
            deadline = time.monotonic() + 10
            while not pool._waiting:  # the row's INSERT queued behind the busy thread
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.005)
            task.cancel()  # the client leaves
            for _ in range(10):  # loop turns (not time): the task takes its cancellation
                await asyncio.sleep(0)
            free.set()
            holder.release()
            with pytest.raises(asyncio.CancelledError):
                await task
        await aclose_sessions()

    try:
        async_to_sync(scenario)()
    finally:
        close_pool_connections(pool)  # the pool's thread holds one: PostgreSQL's teardown

    row = UsageLog.objects.get()  # the provider answered: the call is accounted
    assert row.success is True
    assert row.completion_tokens > 0


def test_calls_cancelled_because_their_clients_left_never_open_the_breaker(
    raw_server, local_config_for, settings
):
    """A load's clients leaving at once (1,024 cancelled calls) is no provider failure:
    counted as connection errors they opened the breaker and the next calls were refused."""
    from llm_providers.limits import breaker

    settings.LLM_BREAKER_FAILURES = 2
    got_request = threading.Semaphore(0)

    def hold(conn):
        read_request(conn)
        got_request.release()
        conn.settimeout(10)
        conn.recv(1)

    server = raw_server(hold)
    local_config_for(server.url())

    async def scenario():
        for _ in range(3):
            task = asyncio.ensure_future(LLMService("tenant_123").achat(MESSAGES))
            assert await asyncio.to_thread(got_request.acquire, True, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await aclose_sessions()

    async_to_sync(scenario)()

    assert UsageLog.objects.filter(metadata__cancelled=True).count() == 3
    key = breaker.breaker_key(LLMService("tenant_123").resolve())
    assert breaker.allow(key) == (True, None)
    assert breaker.state(key)["state"] == breaker.CLOSED


@pytest.mark.django_db(transaction=True)
def test_a_stream_never_relayed_is_closed_with_its_row_when_the_request_task_ends(
    httpserver, local_config_for
):
    """A /v1 client that leaves while the response is on its way out (before the relay
    runs) cancels the request before anything iterates or closes the stream: the view
    closes it when the request's task ends (gateway/views.py)."""
    from llm_providers.gateway.views import _close_when_request_ends

    httpserver.expect_request(CHAT, method="POST").respond_with_response(
        Response(
            'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
            mimetype="text/event-stream",
        )
    )
    local_config_for(httpserver.url_for("/v1"))

    async def scenario():
        async def request():
            stream = await LLMService("tenant_123").astream_chat(MESSAGES)
            _close_when_request_ends(stream)
            return stream  # the response never reaches the relay

        stream = await asyncio.ensure_future(request())
        deadline = time.monotonic() + 10
        while stream.result is None:  # closed by the task's done-callback
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await aclose_sessions()
        return stream.result

    result = async_to_sync(scenario)()

    row = UsageLog.objects.get()
    assert result.usage_log_id == row.pk
    assert row.metadata["client_disconnected"] is True


def test_events_that_arrive_together_are_relayed_together(raw_server, local_config_for):
    """`batches()`: what one network read holds is one batch (the gateway sends it in one
    write); events that arrive apart stay apart, in order."""
    second_part = threading.Event()

    def events(*words):
        return b"".join(
            b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % w for w in words
        )

    def handle(conn):
        read_request(conn)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        conn.sendall(head + events(b"a", b"b", b"c"))  # one write: one read
        assert second_part.wait(10)
        conn.sendall(events(b"d") + b"data: [DONE]\n\n")

    local_config_for(raw_server(handle).url())

    async def scenario():
        stream = await LLMService("tenant_123").astream_chat(MESSAGES)
        texts = []
        async for batch in stream.batches():
            texts.append([d.text for d in batch if d.text])
            second_part.set()  # the first batch is in: send the rest
        await aclose_sessions()
        return texts, stream.result

    texts, result = async_to_sync(scenario)()

    assert [t for t in texts if t] == [["a", "b", "c"], ["d"]]
    assert result.success and result.content == "abcd"
    assert UsageLog.objects.get().success is True
