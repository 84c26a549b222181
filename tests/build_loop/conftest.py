import pytest

from tests.build_loop.fakes import FakeLLM


@pytest.fixture
def fake_llm(monkeypatch):
    """Replaces build_loop's LLMService with a scripted fake; append replies to `.replies`."""
    fake = FakeLLM()
    monkeypatch.setattr("build_loop.services.LLMService", fake)
    return fake
