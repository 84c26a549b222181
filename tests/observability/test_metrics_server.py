"""`/metrics` from a real multi-process server (scripts/serve-web.sh, two granian workers).

Known traffic goes through /v1 to a local stand-in provider (some calls fail with a 500),
spread over both worker processes; every scrape, whichever worker answers it, must then
report the exact totals of all of them. A worker killed in the middle of a stream leaves
its counts counted and nothing "in flight".
"""

import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import subprocess_database, wait_until
from tests.support.stack import Stack
from tests.support.upstream import MODEL, chat_reply

BROKEN = "broken-model"  # the stand-in answers 500 for this model
PROMPT_TOKENS, COMPLETION_TOKENS = 7, 3
# 1000 USD per million tokens each way: 0.01 USD a call.
PRICING = {"input_per_mtok": "1000", "output_per_mtok": "1000"}


class StandIn:
    """An OpenAI-compatible provider on 127.0.0.1; a stream can be held open."""

    def __init__(self):
        from pytest_httpserver import HTTPServer

        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.stream_open = threading.Event()
        self.release = threading.Event()

    def start(self):
        from werkzeug import Response

        def chat(request):
            body = json.loads(request.get_data())
            if body["model"] == BROKEN:
                error = {"error": {"message": "upstream broke", "type": "server_error"}}
                return Response(json.dumps(error), status=500, content_type="application/json")
            if body.get("stream"):
                return Response(self._stream(), content_type="text/event-stream")
            reply = chat_reply("OK", PROMPT_TOKENS, COMPLETION_TOKENS)
            return Response(json.dumps(reply), content_type="application/json")

        self.server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(chat)
        self.server.start()
        return self

    def _stream(self):
        chunk = {"choices": [{"index": 0, "delta": {"content": "O"}}], "model": MODEL}
        yield f"data: {json.dumps(chunk)}\n\n"
        self.stream_open.set()
        self.release.wait(30)

    def stop(self):
        self.release.set()
        self.server.clear()
        if self.server.is_running():
            self.server.stop()

    @property
    def base_url(self):
        return self.server.url_for("/v1")


@pytest.fixture
def stand_in():
    provider = StandIn().start()
    yield provider
    provider.stop()


@pytest.fixture
def stack(tmp_path, stand_in):
    with subprocess_database(tmp_path) as database_url:
        deployment = Stack(tmp_path, database_url, stand_in)
        deployment.migrate()
        try:
            yield deployment
        finally:
            deployment.stop()


def scrape(stack) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one GET /metrics."""
    response = stack.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_pids_with_counters(stack) -> set[int]:
    directory = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}


def chat(stack, key, model):
    return stack.post(
        "/v1/chat/completions",
        key,
        {"model": model, "messages": [{"role": "user", "content": "Say OK"}]},
        headers={"Connection": "close"},  # a new connection each time: any worker may take it
    )


def test_metrics_sum_every_worker_process_after_known_traffic(stack, stand_in):
    key = stack.create_tenants("acme")["acme"]
    stack.start_server(WEB_CONCURRENCY=2)
    configured = stack.post(
        "/api/llm/provider/configure",
        key,
        {
            "provider": "local",
            "base_url": stand_in.base_url,
            "default_model": MODEL,
            "api_key": "sk-test-metrics-0001",
            "metadata": {"pricing": PRICING},
        },
    )
    assert configured.status_code == 201, configured.text

    # Batches of 10 calls (3 failing), 8 at a time, until both workers have served calls
    # (bounded): the totals are then known exactly, whichever worker served which.
    sent = failed = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            models = [BROKEN if i % 10 in (1, 4, 7) else MODEL for i in range(10)]
            answers = list(pool.map(lambda m: chat(stack, key, m), models))
            for model, answer in zip(models, answers, strict=True):
                assert answer.status_code == (502 if model == BROKEN else 200), answer.text
            sent += len(models)
            failed += models.count(BROKEN)
            if len(worker_pids_with_counters(stack)) >= 2:
                break
    assert len(worker_pids_with_counters(stack)) == 2, "both workers served calls"
    ok = sent - failed

    # Several scrapes, answered by either worker: the same exact totals every time.
    for _ in range(6):
        samples = scrape(stack)
        requests_total = "switchyard_llm_requests_total"
        assert value(
            samples, requests_total, provider="local", model=MODEL, endpoint="chat",
            outcome="success",
        ) == ok  # fmt: skip
        assert value(
            samples, requests_total, provider="local", model=BROKEN, endpoint="chat",
            outcome="server_error",
        ) == failed  # fmt: skip
        tokens = "switchyard_llm_tokens_total"
        assert value(samples, tokens, provider="local", model=MODEL, type="input") == (
            ok * PROMPT_TOKENS
        )
        assert value(samples, tokens, provider="local", model=MODEL, type="output") == (
            ok * COMPLETION_TOKENS
        )
        cost = value(samples, "switchyard_llm_cost_usd_total", provider="local", model=MODEL)
        assert cost == pytest.approx(ok * 0.01)
        assert (
            value(
                samples,
                "switchyard_llm_request_duration_seconds_count",
                provider="local",
                endpoint="chat",
            )
            == sent
        )
        assert value(samples, "switchyard_gateway_overhead_seconds_count") == sent
        assert value(samples, "switchyard_llm_inflight_requests") == 0
        # No tenant label unless the operator turns it on.
        assert all("tenant" not in dict(labels) for _, labels in samples)


def test_a_killed_worker_keeps_its_counts_and_leaves_nothing_in_flight(stack, stand_in):
    key = stack.create_tenants("acme")["acme"]
    server = stack.start_server(WEB_CONCURRENCY=2)
    configured = stack.post(
        "/api/llm/provider/configure",
        key,
        {
            "provider": "local",
            "base_url": stand_in.base_url,
            "default_model": MODEL,
            "api_key": "sk-test-metrics-0002",
        },
    )
    assert configured.status_code == 201, configured.text
    assert chat(stack, key, MODEL).status_code == 200

    # A stream held open by the stand-in: one call in flight.
    streaming = requests.post(
        f"{server.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
        stream=True,
        timeout=30,
    )
    assert streaming.status_code == 200
    assert stand_in.stream_open.wait(10)
    wait_until(
        lambda: value(scrape(stack), "switchyard_llm_inflight_requests") == 1,
        timeout=10,
        what="the stream counted in flight",
    )

    # Kill both workers (granian respawns them): the stream's process dies mid-call.
    workers = _children(server.process.pid)
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    streaming.close()
    wait_until(
        lambda: len(set(_children(server.process.pid)) - set(workers)) == 2,
        timeout=30,
        what="granian respawning both workers",
        process=server.process,
    )

    def settled():
        try:
            return scrape(stack)
        except (requests.RequestException, AssertionError):
            return None

    samples = wait_until(settled, timeout=30, what="a scrape after the respawn")
    assert value(samples, "switchyard_llm_inflight_requests") == 0
    assert (
        value(
            samples,
            "switchyard_llm_requests_total",
            provider="local",
            model=MODEL,
            endpoint="chat",
            outcome="success",
        )
        == 1
    )


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (granian's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]
