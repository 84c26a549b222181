"""Limits across real server processes: two web servers and db_worker on one database.

Two `scripts/serve-web.sh` servers (granian, as `make serve`) on their own ports share the
test database (SQLite file or PostgreSQL) and one file cache, like two machines of a
deployment; the calls go to both at once over HTTP. db_worker runs as its own process. The
provider is the local fake (tests/support/upstream.py). The servers run the real clock, so a
test that depends on a minute window first waits (bounded, polling) until the current
minute has at least 20 s left: the whole burst then falls into one window.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests

from build_loop.models import Build, BuildStatus, StepStatus
from llm_providers.errors import ErrorType
from llm_providers.limits.backends import get_backend
from llm_providers.limits.policy import to_units, windows
from llm_providers.models import UsageLog
from tests.support.processes import ROOT, DbWorker, WebServer, process_env, wait_until

from .conftest import set_limits, test_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
MARGIN = 20  # seconds a minute window must still have before a burst starts


def server_env(tmp_path) -> dict:
    """The processes' environment: the test database, one cache shared by all of them."""
    return process_env(
        test_database_url(),
        tmp_path,
        FIELD_ENCRYPTION_KEY=os.environ["FIELD_ENCRYPTION_KEY"],
        LLM_LIMITS_BACKEND="database",
        # No reconciliation: the counters must equal the rows by admission and settling alone.
        LLM_LIMITS_RECONCILE_SECONDS=0,
        # Without the default per-process cap of concurrent calls (8): the bursts here
        # test the tenant's own limits, which a 9th concurrent call would otherwise meet
        # first as a `max_concurrent` refusal.
        LLM_DEFAULT_MAX_CONCURRENT=0,
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )


@pytest.fixture
def servers(tmp_path):
    env = server_env(tmp_path)
    started = []
    try:
        for n in (1, 2):
            started.append(WebServer(env, tmp_path / f"server-{n}.log").start(timeout=60))
        yield started
    finally:
        for server in started:
            server.stop()


def wait_for_fresh_minute() -> float:
    """Poll until the current minute has ≥ MARGIN s left; the end of that minute."""
    wait_until(
        lambda: 60 - time.time() % 60 >= MARGIN,
        timeout=60 - MARGIN + 5,
        what=f"a minute with {MARGIN} s left",
        interval=0.2,
    )
    return (time.time() // 60 + 1) * 60


def burst(servers, api_key, count: int) -> list[dict]:
    """`count` concurrent /v1 calls, alternating between the servers, released together."""
    gate = threading.Barrier(count)

    def call(i: int) -> dict:
        url = f"{servers[i % len(servers)].base_url}{CHAT}"
        headers = {"Authorization": f"Bearer {api_key.plain_key}"}
        gate.wait(timeout=30)
        before = time.time()
        response = requests.post(url, json=BODY, headers=headers, timeout=60)
        after = time.time()
        return {"response": response, "before": before, "after": after, "server": i % 2}

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


def test_30_per_minute_admits_exactly_30_across_two_servers_with_the_real_reset(
    tenant, api_key, priced_config, servers
):
    set_limits(tenant, requests_per_minute=30)
    window_end = wait_for_fresh_minute()
    results = burst(servers, api_key, 60)
    assert max(r["after"] for r in results) < window_end, "the burst outlasted its window"

    admitted = [r for r in results if r["response"].status_code == 200]
    refused = [r for r in results if r["response"].status_code != 200]
    assert len(admitted) == 30
    # Each server took 30 of the calls: limits per process would have admitted all 60.
    # (Which server's calls got the 30 slots is a race, so it is not asserted.)
    assert [sum(r["server"] == n for r in results) for n in (0, 1)] == [30, 30]
    for r in refused:
        response = r["response"]
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
        assert set(error) >= {"message", "type", "param", "code"}
        # The seconds left in the window when the server refused, measured on the wall
        # clock around the call (the header rounds up to whole seconds).
        retry_after = int(response.headers["Retry-After"])
        assert window_end - r["after"] - 1 <= retry_after <= window_end - r["before"] + 1
        assert response.headers["x-ratelimit-remaining-requests"] == "0"

    rows = UsageLog.objects.filter(tenant=tenant)
    assert rows.filter(success=True).count() == 30
    assert rows.filter(success=False, error_type=ErrorType.RATE_LIMITED).count() == 30
    assert rows.count() == 60
    # Counters equal the rows once every call has settled (no reconciliation ran).
    counters = get_backend().counters(tenant.pk, windows(window_end - 1))
    assert counters.minute_requests == 30
    assert counters.minute_tokens == sum(row.tokens_used for row in rows.filter(success=True))
    assert counters.inflight == 0


def test_a_budget_for_10_calls_holds_across_two_servers(tenant, api_key, priced_config, servers):
    # A cent per token: each call costs $0.08 (6 + 2 tokens), so $0.80 pays for 10 calls;
    # each reserves its worst case first, so fewer may be admitted, never more.
    budget = Decimal("0.80")
    set_limits(tenant, usd_per_day=budget)
    results = burst(servers, api_key, 40)

    admitted = [r for r in results if r["response"].status_code == 200]
    refused = [r for r in results if r["response"].status_code != 200]
    assert 1 <= len(admitted) <= 10
    for r in refused:
        response = r["response"]
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "budget_exceeded"
        assert int(response.headers["Retry-After"]) >= 1

    rows = UsageLog.objects.filter(tenant=tenant)
    assert rows.count() == 40
    assert rows.filter(success=True).count() == len(admitted)
    assert rows.filter(success=False, error_type=ErrorType.BUDGET_EXCEEDED).count() == len(refused)
    spent = sum(row.cost_usd for row in rows.filter(success=True))
    assert spent == Decimal("0.08") * len(admitted) <= budget
    counters = get_backend().counters(tenant.pk, windows(time.time()))
    assert counters.day_cost == to_units(spent)
    assert counters.inflight == 0


def test_a_build_started_over_http_and_refused_in_db_worker_fails_and_keeps_its_steps(
    tenant, api_key, priced_config, servers, tmp_path
):
    # One request a minute: the blueprint is admitted, the review that follows is refused.
    set_limits(tenant, requests_per_minute=1)
    worker = DbWorker(server_env(tmp_path), tmp_path / "worker.log").start()
    try:
        wait_for_fresh_minute()
        response = requests.post(
            f"{servers[0].base_url}/api/build/start",
            json={"prompt": "A web shop for second-hand bicycles", "max_iterations": 3},
            headers={"Authorization": f"Bearer {api_key.plain_key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        # Polled on the other server: the build is the deployment's, not one process's.
        status_url = f"{servers[1].base_url}{urlsplit(response.json()['status_url']).path}"

        def finished():
            body = requests.get(
                status_url, headers={"Authorization": f"Bearer {api_key.plain_key}"}, timeout=10
            ).json()
            return body if body["status"] in {"succeeded", "failed", "cancelled"} else None

        body = wait_until(finished, timeout=60, what="the build", process=worker.process)
    finally:
        worker.stop()

    assert body["status"] == "failed"
    assert body["error"]["type"] == ErrorType.RATE_LIMITED
    assert [(s["name"], s["status"]) for s in body["steps"]] == [
        ("blueprint", "succeeded"),
        ("review", "failed"),
    ]
    build = Build.objects.get(pk=body["id"])
    assert build.status == BuildStatus.FAILED
    assert build.error["status_code"] == 429
    assert build.steps.get(name="blueprint").status == StepStatus.SUCCEEDED
    assert build.steps.get(name="review").usage_log.error_type == ErrorType.RATE_LIMITED
    rows = UsageLog.objects.filter(tenant=tenant)
    assert rows.count() == 2
    assert rows.filter(success=True).count() == 1
