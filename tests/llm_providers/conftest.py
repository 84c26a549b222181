import pytest
from pytest_httpserver import HTTPServer

from llm_providers import services
from tests.llm_providers.fake_llm_service import FakeLLMService


@pytest.fixture
def llm_service(monkeypatch):
    """Until LLMService is merged: the stand-in, doing real HTTP to the local servers."""
    FakeLLMService.calls = []
    monkeypatch.setattr(services, "LLMService", FakeLLMService, raising=False)
    return FakeLLMService


@pytest.fixture(scope="session")
def _threaded_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(_threaded_server):
    """A local OpenAI-compatible server that can answer several requests at once."""
    _threaded_server.clear()
    yield _threaded_server
    _threaded_server.clear()


def base_url(server) -> str:
    return server.url_for("/v1")


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
