"""The existing sync views, served over ASGI by the real server (scripts/serve-web.sh).

The in-process suite drives the views through Django's test client (WSGI-style); these
requests go through granian, config.asgi (body limits, pooled threads) and Django's ASGI
handler: the admin, static files through whitenoise, the REST API, and /v1 plain, streamed
and abandoned mid-stream.
"""

import json
import socket
from pathlib import Path

import django.contrib.admin
import pytest

from tests.support.processes import manage, subprocess_database, wait_until
from tests.support.slow_provider import SlowProvider
from tests.support.stack import Stack
from tests.support.upstream import MODEL

USAGE_ROWS = (
    "from llm_providers.models import UsageLog\n"
    "import json\n"
    "print(json.dumps(list(UsageLog.objects.values("
    "'success', 'prompt_tokens', 'completion_tokens', 'metadata'))))"
)


@pytest.fixture
def provider():
    stand_in = SlowProvider(chunks=200).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def stack(tmp_path, provider):
    with subprocess_database(tmp_path) as database_url:
        deployment = Stack(tmp_path, database_url, provider)
        # The test settings: static files from the apps, no collectstatic needed.
        deployment.env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
        deployment.migrate()
        try:
            yield deployment
        finally:
            deployment.stop()


@pytest.fixture
def tenant(stack, provider):
    key = stack.create_tenants("acme")["acme"]
    stack.start_server()
    configured = stack.post(
        "/api/llm/provider/configure",
        key,
        {
            "provider": "local",
            "base_url": provider.base_url,
            "default_model": MODEL,
            "api_key": "sk-test-asgi-0001",
        },
    )
    assert configured.status_code == 201, configured.text
    return key


def usage_rows(stack) -> list[dict]:
    out = manage(stack.env, "shell", "-c", USAGE_ROWS).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_admin_static_files_rest_api_and_v1_over_asgi(stack, tenant):
    login = stack.get("/admin/login/")
    assert login.status_code == 200
    assert 'name="username"' in login.text

    static = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "css" / "base.css"
    served = stack.get("/static/admin/css/base.css")
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("text/css")
    assert served.content == static.read_bytes()

    status = stack.get("/api/llm/provider/status", tenant)
    assert status.status_code == 200, status.text

    models = stack.get("/v1/models", tenant)
    assert models.status_code == 200
    assert models.json()["object"] == "list"

    chat = stack.post(
        "/v1/chat/completions",
        tenant,
        {"model": MODEL, "messages": [{"role": "user", "content": "Say OK"}]},
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == "OK"
    assert [(row["success"], row["prompt_tokens"]) for row in usage_rows(stack)] == [(True, 6)]

    missing = stack.get("/api/no/such/endpoint", tenant)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_a_client_that_leaves_mid_stream_still_gets_its_usage_row(stack, tenant, provider):
    provider.hold_streams()
    body = json.dumps(
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", stack.server.port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {tenant}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    while b"part0" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    sock.close()  # the client leaves while the provider still holds the stream

    def row():
        # One more chunk at a time: the server stops relaying (and writes the row) once it
        # has seen the disconnect, long before the provider's 200 chunks are out.
        provider.step()
        return usage_rows(stack) or None

    rows = wait_until(row, timeout=60, what="the abandoned stream's usage row")
    assert len(rows) == 1
    assert rows[0]["metadata"].get("client_disconnected") is True
    assert rows[0]["metadata"].get("stream") is True
