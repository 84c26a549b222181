"""Graceful shutdown (issue 9.7): SIGTERM stops accepting, open streams finish, rows exist.

A real server process streams a /v1 answer from a provider stand-in that holds the stream
after its first chunk; the test sends SIGTERM while the stream is open, then lets the
provider finish: the client gets the whole stream up to [DONE], the usage row is written,
new connections are refused meanwhile, and the server exits on its own.
"""

import json
import signal
import socket

import pytest
import requests

from tests.support.processes import manage, subprocess_database, wait_until
from tests.support.slow_provider import SlowProvider
from tests.support.stack import Stack
from tests.support.upstream import MODEL

USAGE_ROWS = (
    "from llm_providers.models import UsageLog\n"
    "import json\n"
    "print(json.dumps(list(UsageLog.objects.values("
    "'endpoint', 'success', 'prompt_tokens', 'completion_tokens'))))"
)


@pytest.fixture
def provider():
    stand_in = SlowProvider(chunks=4).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def stack(tmp_path, provider):
    with subprocess_database(tmp_path) as database_url:
        deployment = Stack(tmp_path, database_url, provider)
        deployment.migrate()
        try:
            yield deployment
        finally:
            deployment.stop()


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_sigterm_lets_an_open_stream_finish_and_its_usage_row_is_written(stack, provider):
    key = stack.create_tenants("acme")["acme"]
    server = stack.start_server(SHUTDOWN_GRACE_SECONDS=30)
    configured = stack.post(
        "/api/llm/provider/configure",
        key,
        {
            "provider": "local",
            "base_url": provider.base_url,
            "default_model": MODEL,
            "api_key": "sk-test-shutdown-0001",
        },
    )
    assert configured.status_code == 201, configured.text
    provider.hold_streams()

    response = requests.post(
        f"{server.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        stream=True,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    lines = response.iter_lines(chunk_size=None)  # as the bytes arrive, not 512 at a time
    before = []
    for line in lines:
        if line.startswith(b"data:"):
            before.append(line)
            if b"part0" in line:
                break
    # Relayed as it arrived: the provider still holds the rest of the stream.
    assert provider.stream_started.is_set() and not provider.release_streams.is_set()

    server.process.send_signal(signal.SIGTERM)
    wait_until(
        lambda: refuses_connections(server.port), timeout=20, what="the server to stop accepting"
    )
    assert server.process.poll() is None, "the server must wait for the open stream"

    provider.release()
    rest = [line for line in lines if line.startswith(b"data:")]
    assert rest[-1] == b"data: [DONE]"
    content = "".join(
        choice["delta"].get("content") or ""
        for line in [*before, *rest[:-1]]
        for choice in json.loads(line[len(b"data:") :])["choices"]
    )
    assert content == "part0 part1 part2 part3 "

    assert server.process.wait(timeout=30) == 0
    rows = json.loads(manage(stack.env, "shell", "-c", USAGE_ROWS).stdout.strip().splitlines()[-1])
    streamed = [row for row in rows if row["prompt_tokens"] == 7]
    assert streamed == [
        {
            "endpoint": streamed[0]["endpoint"],
            "success": True,
            "prompt_tokens": 7,
            "completion_tokens": 5,
        }
    ]
