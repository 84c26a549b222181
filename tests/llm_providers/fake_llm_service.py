"""A stand-in for LLMService until the real one is merged: same interface, real HTTP.

It talks to the local test servers exactly like an OpenAI-compatible client would, so the
tests that use it keep their meaning when the real service replaces it.
"""

import time
from dataclasses import dataclass

import requests
from django.conf import settings

from llm_providers.services import decrypted_api_key


@dataclass
class FakeError:
    type: str
    message: str
    status_code: int | None = None

    def as_dict(self):
        return {"type": self.type, "message": self.message, "status_code": self.status_code}


@dataclass
class FakeResult:
    success: bool
    latency_ms: int
    error: FakeError | None = None
    content: str = ""
    tokens_used: int = 0
    provider: str = ""
    model: str = ""
    usage_log_id: int | None = None


STATUS_TYPES = {401: "authentication", 403: "permission", 404: "not_found", 429: "rate_limit"}


class FakeLLMService:
    calls = []

    def __init__(self, tenant_id, *, config=None):
        self.tenant_id = tenant_id
        self.config = config

    def _base_and_key(self):
        if self.config is not None:
            return self.config.base_url, decrypted_api_key(self.config)
        return settings.LLM_DEFAULT_BASE_URL, ""

    def _call(self, method, path, timeout, **kwargs):
        base, key = self._base_and_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        started = time.monotonic()
        try:
            reply = requests.request(
                method, base + path, headers=headers, timeout=timeout or 5, **kwargs
            )
        except requests.Timeout:
            error = FakeError("timeout", "timed out")
        except requests.ConnectionError:
            error = FakeError("connection", "connection refused")
        else:
            if reply.ok:
                error = None
            else:
                error = FakeError(
                    STATUS_TYPES.get(reply.status_code, "server_error"),
                    "upstream said no",
                    reply.status_code,
                )
        latency = round((time.monotonic() - started) * 1000)
        return FakeResult(success=error is None, latency_ms=latency, error=error)

    def is_available(self):
        return True

    def list_models(self, timeout=None, *, endpoint="validation", record_usage=True):
        type(self).calls.append(("list_models", self.tenant_id, None))
        return self._call("GET", "/models", timeout)

    def generate_completion(self, prompt, max_tokens=1000, *, endpoint="completion", **kwargs):
        type(self).calls.append(("generate_completion", self.tenant_id, endpoint))
        body = {
            "model": "m",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        return self._call("POST", "/chat/completions", 5, json=body)
