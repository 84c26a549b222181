"""`metadata.headers` cannot frame, route or authenticate a request (issue 15.7)."""

import json
import socket
import threading

import pytest

from llm_providers.services import LLMService
from tests.factories import ProviderConfigFactory
from tests.support.wire import ANTHROPIC_KEY, openai_reply

CONFIGURE = "/api/llm/provider/configure"
LOCAL = {"provider": "local", "default_model": "m", "base_url": "http://127.0.0.1:9/v1"}
SMUGGLING = {
    "Host": "internal.example",
    "Transfer-Encoding": "chunked",
    "Content-Length": "5",
    "Connection": "keep-alive, Upgrade",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Trailer": "X-A",
    "Upgrade": "h2c",
    "Proxy-Authorization": "Basic eA==",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "internal.example",
    "Forwarded": "for=10.0.0.1",
    "Via": "1.1 internal",
}


class RawUpstream:
    """Records the exact request head bytes and answers one OpenAI completion."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.heads: list[bytes] = []
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.heads.append(data.split(b"\r\n\r\n", 1)[0])
            body = json.dumps(openai_reply()).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        self.done.set()

    def headers(self) -> list[tuple[str, str]]:
        assert self.done.wait(10), "the upstream got no request"
        lines = self.heads[0].decode("latin-1").split("\r\n")[1:]
        return [
            (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)
        ]

    def close(self):
        self.sock.close()


@pytest.fixture
def raw_upstream():
    server = RawUpstream()
    yield server
    server.close()


@pytest.mark.parametrize("name", [*SMUGGLING, "authorization", "X-Bad Name", "Bad:Name"])
def test_api_refuses_framing_hop_by_hop_proxy_and_auth_headers_at_save(tenant_client, name):
    metadata = {"headers": {name: SMUGGLING.get(name, "v")}}
    response = tenant_client.post(CONFIGURE, {**LOCAL, "metadata": metadata}, format="json")

    assert response.status_code == 400, response.content
    message = response.json()["error"]["details"]["metadata"][0]
    assert message.startswith("headers: ") and name in message


def test_anthropic_configs_cannot_set_their_key_header(tenant_client):
    body = {
        "provider": "anthropic",
        "api_key": ANTHROPIC_KEY,
        "default_model": "claude",
        "metadata": {"headers": {"X-Api-Key": "other"}},
    }
    response = tenant_client.post(CONFIGURE, body, format="json")

    assert response.status_code == 400, response.content
    assert "api_key" in response.json()["error"]["details"]["metadata"][0]


def test_header_value_with_a_line_break_is_refused(tenant_client):
    metadata = {"headers": {"X-Team": "blue\r\nHost: x"}}
    response = tenant_client.post(CONFIGURE, {**LOCAL, "metadata": metadata}, format="json")

    assert response.status_code == 400, response.content


def test_ordinary_extra_headers_are_accepted(tenant_client):
    metadata = {"headers": {"X-Team": "blue", "OpenAI-Beta": "assistants=v2"}}
    response = tenant_client.post(CONFIGURE, {**LOCAL, "metadata": metadata}, format="json")

    assert response.status_code == 201, response.content


def test_headers_saved_before_the_rule_never_reach_the_wire(raw_upstream, tenant):
    # A row written before save-time checks existed: the send-time merge drops them.
    ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        default_model="m",
        base_url=raw_upstream.base_url,
        api_key="local-key-12345678",
        metadata={"headers": {**SMUGGLING, "Authorization": "Bearer theirs", "X-Team": "blue"}},
    )

    result = LLMService("tenant_123").generate_completion("Hi")

    assert result.success, result.error
    sent = raw_upstream.headers()
    names = [name for name, _ in sent]
    assert names.count("host") == 1 and dict(sent)["host"].startswith("127.0.0.1:")
    assert names.count("content-length") == 1
    assert "transfer-encoding" not in names
    assert "upgrade" not in names and "te" not in names and "trailer" not in names
    assert "via" not in names and "forwarded" not in names and "keep-alive" not in names
    assert not [n for n in names if n.startswith(("proxy-", "x-forwarded-"))]
    assert names.count("authorization") == 1
    assert dict(sent)["authorization"] == "Bearer local-key-12345678"  # ours wins
    assert dict(sent)["x-team"] == "blue"


def test_keyless_local_config_cannot_send_an_authorization_header(raw_upstream, tenant):
    ProviderConfigFactory(
        tenant=tenant,
        provider="local",
        default_model="m",
        base_url=raw_upstream.base_url,
        api_key="",
        metadata={"headers": {"authorization": "Bearer theirs"}},
    )

    assert LLMService("tenant_123").generate_completion("Hi").success
    assert "authorization" not in [name for name, _ in raw_upstream.headers()]
