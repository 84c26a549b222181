"""The wire behaviour against a real local server: retries, waits, timeouts, resets (SPEC §5)."""

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from werkzeug import Response

from llm_providers.errors import ErrorType
from llm_providers.models import UsageLog
from llm_providers.services import LLMService
from llm_providers.transport import retry, sessions
from llm_providers.transport.send import send
from tests.support.wire import openai_reply

from . import engines

CHAT = "/v1/chat/completions"


@pytest.fixture
def local(httpserver, local_config_for):
    """The tenant's active config: the local provider at the test server."""
    return local_config_for(httpserver.url_for("/v1"))


def reply_ok(httpserver):
    httpserver.expect_oneshot_request(CHAT, method="POST").respond_with_json(openai_reply("ok"))


def error_json(status, message="upstream trouble", *, code=None, etype="server_error"):
    return Response(
        json.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}}),
        status=status,
        content_type="application/json",
    )


_engine = ["sync"]


@pytest.fixture(params=engines.ENGINES)
def engine(request):
    """Each rule test that takes it runs on the sync and on the async path."""
    _engine[0] = request.param
    yield request.param
    _engine[0] = "sync"


def call():
    service = LLMService("tenant_123")
    return engines.completion(_engine[0], service, "Hi", max_tokens=16)


def test_retries_a_server_error_with_jittered_exponential_backoff(httpserver, local, waits, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(error_json(500))
    httpserver.expect_oneshot_request(CHAT).respond_with_response(error_json(502))
    reply_ok(httpserver)

    result = call()

    assert result.success and result.content == "ok"
    assert result.attempts == 3
    assert len(httpserver.log) == 3
    assert 0.375 <= waits[0] <= 0.5  # 0.5 s minus up to 25 % jitter
    assert 0.75 <= waits[1] <= 1.0  # doubled


def test_one_idempotency_key_is_reused_across_retries(httpserver, local, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(error_json(503))
    reply_ok(httpserver)

    call()

    keys = {req.headers["Idempotency-Key"] for req, _ in httpserver.log}
    assert len(keys) == 1


def test_both_paths_name_switchyard_once_as_the_user_agent(httpserver, local, engine):
    reply_ok(httpserver)

    call()

    ((request, _),) = httpserver.log
    assert request.headers.getlist("User-Agent") == ["switchyard"]


def test_waits_as_long_as_retry_after_asks(httpserver, local, waits, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(
        Response("{}", status=429, headers={"Retry-After": "7"})
    )
    reply_ok(httpserver)

    result = call()

    assert result.success and waits == [7.0]


def test_retry_after_ms_takes_precedence(httpserver, local, waits, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(
        Response("{}", status=429, headers={"retry-after-ms": "1250", "Retry-After": "9"})
    )
    reply_ok(httpserver)

    call()

    assert waits == [1.25]


def test_retry_after_as_http_date(httpserver, local, waits, engine):
    when = datetime.now(UTC) + timedelta(seconds=30)
    httpserver.expect_oneshot_request(CHAT).respond_with_response(
        Response("{}", status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    reply_ok(httpserver)

    call()

    assert 25 <= waits[0] <= 31


def test_retry_after_beyond_the_cap_is_reported_not_waited(httpserver, local, waits, engine):
    limited = error_json(429, "Rate limit reached", etype="requests", code="rate_limit_exceeded")
    limited.headers["Retry-After"] = "3600"
    httpserver.expect_request(CHAT).respond_with_response(limited)

    result = call()

    assert result.error.type == ErrorType.RATE_LIMIT
    assert result.error.retry_after == 3600
    assert waits == [] and len(httpserver.log) == 1
    assert UsageLog.objects.get().metadata["retry_after"] == 3600


def test_wait_longer_than_the_deadline_is_not_attempted(
    httpserver, local_config_for, waits, engine
):
    local_config_for(httpserver.url_for("/v1"), metadata={"deadline": 2})
    httpserver.expect_request(CHAT).respond_with_response(
        Response("{}", status=503, headers={"Retry-After": "5"})
    )

    result = call()

    assert result.error.type == ErrorType.OVERLOADED
    assert waits == [] and result.attempts == 1


def test_gives_up_after_max_retries(httpserver, local, waits, settings, engine):
    settings.LLM_MAX_RETRIES = 2
    httpserver.expect_request(CHAT).respond_with_response(error_json(500))

    result = call()

    assert result.success is False
    assert result.error.type == ErrorType.SERVER_ERROR
    assert result.error.status_code == 500
    assert result.attempts == 3 and len(httpserver.log) == 3 and len(waits) == 2


def test_overloaded_529_is_retried(httpserver, local, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(
        Response(
            json.dumps(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            ),
            status=529,
        )
    )
    reply_ok(httpserver)

    assert call().attempts == 2


@pytest.mark.parametrize("status", [408, 409])
def test_timeout_and_conflict_statuses_are_retried(httpserver, local, status, engine):
    httpserver.expect_oneshot_request(CHAT).respond_with_response(error_json(status))
    reply_ok(httpserver)

    assert call().attempts == 2


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ErrorType.INVALID_REQUEST),
        (401, ErrorType.AUTHENTICATION),
        (403, ErrorType.PERMISSION),
        (404, ErrorType.NOT_FOUND),
        (422, ErrorType.INVALID_REQUEST),
    ],
)
def test_client_errors_are_never_retried(httpserver, local, waits, status, error_type, engine):
    httpserver.expect_request(CHAT).respond_with_response(
        error_json(status, "nope", etype="invalid_request_error")
    )

    result = call()

    assert result.error.type == error_type
    assert result.error.status_code == status
    assert "nope" in result.error.message
    assert result.attempts == 1 and waits == [] and len(httpserver.log) == 1


def test_exhausted_quota_is_not_retried(httpserver, local, waits, engine):
    httpserver.expect_request(CHAT).respond_with_response(
        error_json(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            etype="insufficient_quota",
            code="insufficient_quota",
        )
    )

    result = call()

    assert result.error.type == ErrorType.QUOTA_EXCEEDED
    assert result.error.status_code == 429
    assert len(httpserver.log) == 1 and waits == []


def test_x_should_retry_false_is_obeyed(httpserver, local, engine):
    httpserver.expect_request(CHAT).respond_with_response(
        Response("{}", status=500, headers={"x-should-retry": "false"})
    )

    assert call().attempts == 1


def test_read_timeout_is_a_timeout_error_and_retried(httpserver, local, settings, waits, engine):
    settings.LLM_REQUEST_TIMEOUT = 0.2
    settings.LLM_REQUEST_DEADLINE = 5
    settings.LLM_MAX_RETRIES = 1
    stall = threading.Event()

    def slow(request):
        stall.wait(0.6)  # longer than the read timeout; the server cannot reply sooner
        return Response(json.dumps(openai_reply()), content_type="application/json")

    httpserver.expect_request(CHAT).respond_with_handler(slow)

    result = call()

    assert result.error.type == ErrorType.TIMEOUT
    assert result.error.status_code is None
    assert result.attempts == 2 and len(waits) == 1


def test_deadline_bounds_the_whole_call(httpserver, local_config_for, settings, engine):
    settings.LLM_REQUEST_TIMEOUT = 5
    local_config_for(httpserver.url_for("/v1"), metadata={"deadline": 0.3})

    def slow(request):
        threading.Event().wait(0.8)
        return Response(json.dumps(openai_reply()), content_type="application/json")

    httpserver.expect_request(CHAT).respond_with_handler(slow)

    result = call()

    assert result.error.type == ErrorType.TIMEOUT
    assert result.attempts == 1


@pytest.fixture
def resetting_server():
    """A server that reads the request and answers with a TCP reset."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    accepted = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.settimeout(1)
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted
    stop.set()
    thread.join(2)
    listener.close()


def test_connection_reset_is_a_connection_error_and_retried(
    resetting_server, local_config_for, waits, engine
):
    url, accepted = resetting_server
    local_config_for(url)

    result = call()

    assert result.error.type == ErrorType.CONNECTION
    assert "the connection was reset" in result.error.message
    assert result.attempts == 3 and len(accepted) == 3 and len(waits) == 2


def test_refused_connection_is_a_connection_error(local_config_for, engine):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    local_config_for(f"http://127.0.0.1:{port}/v1")

    result = call()

    assert result.error.type == ErrorType.CONNECTION
    assert result.attempts == 3


def test_non_json_reply_is_bad_response_and_not_retried(httpserver, local, engine):
    httpserver.expect_request(CHAT).respond_with_data(
        "<html>502 Bad Gateway</html>", status=200, content_type="text/html"
    )

    result = call()

    assert result.error.type == ErrorType.BAD_RESPONSE
    assert result.error.status_code == 200
    assert result.attempts == 1


def test_truncated_json_is_bad_response(httpserver, local, engine):
    httpserver.expect_request(CHAT).respond_with_data(
        json.dumps(openai_reply())[:40], content_type="application/json"
    )

    assert call().error.type == ErrorType.BAD_RESPONSE


def test_redirect_is_not_followed(httpserver, local, engine):
    httpserver.expect_request(CHAT).respond_with_response(
        Response("", status=307, headers={"Location": "http://169.254.169.254/latest"})
    )

    result = call()

    assert result.error.type == ErrorType.CONFIGURATION
    assert result.error.status_code == 307
    assert len(httpserver.log) == 1


def test_one_pooled_session_per_host():
    a = sessions.get_session("https://api.openai.com/v1/chat/completions")
    b = sessions.get_session("https://api.openai.com/v1/models")
    c = sessions.get_session("https://api.anthropic.com/v1/messages")
    d = sessions.get_session("https://api.openai.com/v1/models", check=True)
    assert a is b
    assert a is not c and a is not d


def test_pooled_session_never_keeps_cookies(httpserver, local, engine):
    httpserver.expect_request(CHAT).respond_with_response(
        Response(
            json.dumps(openai_reply()),
            content_type="application/json",
            headers={"Set-Cookie": "tenant_session=abc; Path=/"},
        )
    )

    call()
    call()

    second_request = httpserver.log[1][0]
    assert "Cookie" not in second_request.headers


def test_retry_after_parsing():
    assert retry.retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry.retry_after_seconds({"retry-after-ms": "10"}) == 0.01
    assert retry.retry_after_seconds({"retry-after": "soon"}) is None
    assert retry.retry_after_seconds({}) is None


def test_a_forked_child_does_not_reuse_the_parents_sessions():
    # In a fresh single-threaded interpreter: forking this (threaded) test process is unsafe.
    script = textwrap.dedent(
        """
        import os
        from llm_providers.transport import sessions
        parent = sessions.get_session("https://api.openai.com/v1/models")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            child = sessions.get_session("https://api.openai.com/v1/models")
            os.write(write, b"new" if child is not parent else b"same")
            os._exit(0)
        os.waitpid(pid, 0)
        same_in_parent = sessions.get_session("https://api.openai.com/v1/models") is parent
        print(os.read(read, 10).decode(), same_in_parent)
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert done.stdout.split() == ["new", "True"], done.stderr


def _spec(url, headers=None, body=None):
    from llm_providers.providers.base import HttpRequestSpec

    return HttpRequestSpec("POST", url, headers or {}, json=body)


def _unexpected(status, body, headers):
    raise AssertionError(f"unexpected HTTP {status}")


def test_sends_the_json_body_and_headers_as_prepared_once_per_url(httpserver):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("ok"))
    url = httpserver.url_for(CHAT)

    for n in range(2):  # the second call takes the cached preparation of the URL
        result = send(
            _spec(url, {"Authorization": "Bearer sk-test-fake-key-0001"}, {"n": n}),
            map_error=_unexpected,
            check=True,
        )
        assert result.ok and json.loads(result.body)["choices"][0]["message"]["content"] == "ok"

    for n, (request, _) in enumerate(httpserver.log):
        assert request.get_json() == {"n": n}
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Content-Length"] == str(len(request.get_data()))
        assert request.headers["Authorization"] == "Bearer sk-test-fake-key-0001"
        assert request.headers["Idempotency-Key"].startswith("switchyard-")
        assert "Cookie" not in request.headers


def test_credentials_in_the_url_are_still_sent_as_basic_auth(httpserver):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("ok"))
    url = httpserver.url_for(CHAT).replace("http://", "http://user:pw@")

    result = send(_spec(url, body={"a": 1}), map_error=_unexpected, check=True)

    assert result.ok
    assert httpserver.log[0][0].headers["Authorization"] == "Basic dXNlcjpwdw=="


def test_a_closed_connection_pool_is_replaced_on_the_next_call(httpserver):
    httpserver.expect_request(CHAT, method="POST").respond_with_json(openai_reply("ok"))
    url = httpserver.url_for(CHAT)
    assert send(_spec(url, body={}), map_error=_unexpected).ok
    session = sessions.get_session(url)
    adapter = session.get_adapter(url)

    def pool():  # the pool a request to `url` goes through (HTTPAdapter's public hook)
        request = requests.Request("POST", url).prepare()
        return adapter.get_connection_with_tls_context(request, verify=True)

    old_pool = pool()
    adapter.poolmanager.pools.clear()  # the manager forgets it (an eviction) ...
    old_pool.close()  # ... and it is closed

    result = send(_spec(url, body={}), map_error=_unexpected)

    assert result.ok and len(httpserver.log) == 2
    assert pool() is not old_pool and pool().pool is not None


def test_a_header_no_http_request_can_carry_is_a_configuration_error(httpserver):
    url = httpserver.url_for(CHAT)

    result = send(_spec(url, {"Authorization": "Bearer sk-test\nfake"}, {}), map_error=_unexpected)

    assert result.error.type == ErrorType.CONFIGURATION
    assert "sk-test" not in result.error.message
    assert httpserver.log == []
