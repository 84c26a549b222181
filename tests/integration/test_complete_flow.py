"""configure → test → build → usage, over real HTTP, with a real server and a real worker.

A tenant configures a `local` provider pointed at a fake OpenAI-compatible upstream on
127.0.0.1 (tests/support/upstream.py), tests it, starts a build, and polls it while a
separate `manage.py db_worker` process runs it; then the usage endpoints must account
for every call. the web server, the worker and the command-line tools share only the database.

One deployment for the whole module (`flow`: configure, test and build once, the slow
part); each test then checks one phase of it. The tests only read, or try what must
change nothing; the last one stops the processes to read their logs.
"""

from decimal import Decimal

import pytest

from tests.support.processes import subprocess_database, wait_until
from tests.support.stack import Stack
from tests.support.upstream import MODEL, REFINED, TOKENS, FakeUpstream

KEY_A = "sk-test-fake-key-0101"
KEY_B = "sk-test-fake-key-0202"
TERMINAL = {"succeeded", "failed", "cancelled"}
# blueprint → review (fails) → refine → review (passes)
BUILD_KINDS = ["blueprint", "review", "refine", "review"]


def total(kinds, index):
    return sum(TOKENS[kind][index] for kind in kinds)


def configure(stack, key, api_key, base_url):
    response = stack.post(
        "/api/llm/provider/configure",
        key,
        {"provider": "local", "base_url": base_url, "default_model": MODEL, "api_key": api_key},
    )
    assert response.status_code == 201, response.text
    return response


def assert_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["error"]["code"] == code, response.text


def wait_for_build(stack, key, url):
    def finished():
        body = stack.get(url, key).json()
        return body if body["status"] in TERMINAL else None

    return wait_until(finished, timeout=30, what="the build", process=stack.worker.process)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Tenants A and B configure the upstream and test it; A runs a build to its end."""
    tmp_path = tmp_path_factory.mktemp("flow")
    upstream = FakeUpstream().start()
    try:
        with subprocess_database(tmp_path) as database_url:
            stack = Stack(tmp_path, database_url, upstream)
            stack.migrate()
            try:
                keys = stack.create_tenants("tenant_a", "tenant_b", "tenant_c")
                a, b, c = keys["tenant_a"], keys["tenant_b"], keys["tenant_c"]
                stack.start_server()
                stack.start_worker()
                created = configure(stack, a, KEY_A, upstream.base_url)
                config_b = configure(stack, b, KEY_B, upstream.base_url).json()
                tested = stack.post("/api/llm/test", a)
                tested_b = stack.post("/api/llm/test", b)
                # Start the build; the worker process runs it while the test polls the API.
                started = stack.post(
                    "/api/build/start",
                    a,
                    {"prompt": "A web shop for second-hand bicycles", "max_iterations": 3},
                )
                assert started.status_code == 202, started.text
                build = wait_for_build(stack, a, started.json()["status_url"])
                yield {
                    "stack": stack,
                    "upstream": upstream,
                    "a": a,
                    "b": b,
                    "c": c,
                    "created": created,
                    "config_a": created.json(),
                    "config_b": config_b,
                    "tested": tested,
                    "tested_b": tested_b,
                    "started": started,
                    "build": build,
                }
            finally:
                stack.stop()
    finally:
        upstream.stop()


def test_each_tenant_configures_the_upstream_and_tests_it_with_its_own_key(flow):
    created, config_a, tested = flow["created"], flow["config_a"], flow["tested"]
    assert created.headers["Location"].endswith(f"/api/llm/provider/configs/{config_a['id']}")
    assert (config_a["api_key_last4"], config_a["key_status"]) == (KEY_A[-4:], "ok")
    assert tested.status_code == 200
    assert tested.json() | {"latency_ms": None} == {
        "success": True,
        "provider": "local",
        "model": MODEL,
        "error": None,
        "latency_ms": None,
    }
    assert flow["tested_b"].json()["success"] is True


def test_the_worker_runs_the_build_to_a_refined_blueprint_with_its_totals(flow):
    started, build = flow["started"], flow["build"]
    assert started.json()["status"] == "queued"
    assert started.headers["Location"] == started.json()["status_url"]
    assert build["status"] == "succeeded", build["error"]
    assert [(s["name"], s["iteration"], s["status"]) for s in build["steps"]] == [
        ("blueprint", 1, "succeeded"),
        ("review", 1, "succeeded"),
        ("refine", 2, "succeeded"),
        ("review", 2, "succeeded"),
    ]
    assert build["review_passed"] is True
    assert build["blueprint"] == REFINED
    assert build["progress"]["text"] == "step 4 of at most 6"
    assert build["totals"]["tokens_used"] == total(BUILD_KINDS, 0) + total(BUILD_KINDS, 1)
    assert build["totals"]["prompt_tokens"] == total(BUILD_KINDS, 0)
    assert build["totals"]["completion_tokens"] == total(BUILD_KINDS, 1)
    assert build["totals"]["cost_usd"] == "0.00000000"  # `local` is free


def test_every_call_reached_the_upstream_with_the_callers_own_key(flow):
    by_key = {}
    for request in flow["upstream"].seen:
        by_key.setdefault(request.authorization, []).append(request.kind)
    assert by_key == {f"Bearer {KEY_A}": ["other", *BUILD_KINDS], f"Bearer {KEY_B}": ["other"]}


def test_the_usage_logs_hold_the_test_call_and_one_row_per_step(flow):
    stack, a, build, config_a = flow["stack"], flow["a"], flow["build"], flow["config_a"]
    logs = stack.get("/api/llm/usage/logs?page_size=100", a).json()
    assert logs["count"] == 5
    rows = logs["results"]
    assert sorted(row["endpoint"] for row in rows) == ["completion"] * 4 + ["test"]
    assert all(row["success"] and row["provider_config"] == config_a["id"] for row in rows)
    build_rows = [row for row in rows if row["metadata"].get("build_id") == build["id"]]
    assert sorted(row["id"] for row in build_rows) == sorted(
        step["usage_log_id"] for step in build["steps"]
    )
    # The build's totals are their sums.
    assert sum(row["tokens_used"] for row in build_rows) == build["totals"]["tokens_used"]
    assert sum(row["latency_ms"] for row in build_rows) == build["totals"]["latency_ms"]
    assert sum(Decimal(row["cost_usd"]) for row in build_rows) == Decimal(
        build["totals"]["cost_usd"]
    )
    for step in build["steps"]:
        row = next(row for row in build_rows if row["id"] == step["usage_log_id"])
        assert (row["tokens_used"], row["metadata"]["step"]) == (step["tokens_used"], step["name"])


def test_the_usage_stats_total_and_break_down_every_call(flow):
    stack, a, build = flow["stack"], flow["a"], flow["build"]
    stats = stack.get("/api/llm/usage/stats?group_by=endpoint", a).json()
    test_tokens = sum(TOKENS["other"])
    assert stats["totals"]["requests"] == stats["totals"]["successes"] == 5
    assert stats["totals"]["tokens"] == build["totals"]["tokens_used"] + test_tokens
    groups = {group["key"]: group for group in stats["groups"]}
    assert set(groups) == {"completion", "test"}
    assert (groups["completion"]["requests"], groups["completion"]["tokens"]) == (
        4,
        build["totals"]["tokens_used"],
    )
    assert (groups["test"]["requests"], groups["test"]["tokens"]) == (1, test_tokens)


def test_tenant_b_sees_none_of_as_build_config_or_usage(flow):
    stack, upstream, a, b = flow["stack"], flow["upstream"], flow["a"], flow["b"]
    build, config_a, config_b = flow["build"], flow["config_a"], flow["config_b"]
    build_path = f"/api/build/{build['id']}"
    config_path = f"/api/llm/provider/configs/{config_a['id']}"
    calls_before = len(upstream.seen)
    assert_error(stack.get(build_path, b), 404, "not_found")
    assert_error(stack.post(f"{build_path}/cancel", b), 404, "not_found")
    assert stack.get("/api/build/", b).json()["count"] == 0
    assert_error(stack.get(config_path, b), 404, "not_found")
    assert_error(stack.call("PATCH", config_path, b, {"default_model": "x"}), 404, "not_found")
    assert_error(stack.post(f"{config_path}/activate", b), 404, "not_found")
    assert_error(stack.call("DELETE", config_path, b), 404, "not_found")
    assert_error(stack.post("/api/llm/test", b, {"config_id": config_a["id"]}), 404, "not_found")
    assert [row["id"] for row in stack.get("/api/llm/provider/configs", b).json()["results"]] == [
        config_b["id"]
    ]
    b_logs = stack.get("/api/llm/usage/logs", b).json()
    assert [row["endpoint"] for row in b_logs["results"]] == ["test"]
    assert stack.get("/api/llm/usage/stats", b).json()["totals"]["requests"] == 1
    assert len(upstream.seen) == calls_before
    # ...and A's config and build are untouched by B's attempts.
    assert stack.get(config_path, a).json()["default_model"] == MODEL
    assert stack.get(build_path, a).json()["status"] == "succeeded"


def test_bad_input_is_refused_and_creates_or_sends_nothing(flow):
    stack, upstream, a, c = flow["stack"], flow["upstream"], flow["a"], flow["c"]
    build_path = f"/api/build/{flow['build']['id']}"
    calls_before = len(upstream.seen)
    for body in (
        {"prompt": ""},
        {"prompt": "A shop", "max_iterations": 0},
        {"prompt": "A shop", "max_iterations": 11},
        {"prompt": "A shop", "max_iterations": "three"},
        {"max_iterations": 2},
    ):
        assert_error(stack.post("/api/build/start", a, body), 400, "validation_error")
    assert_error(stack.post_raw("/api/build/start", a, b'{"prompt": '), 400, "parse_error")
    for body in (
        {"provider": "nope", "default_model": MODEL},
        {"provider": "local", "default_model": MODEL, "base_url": "http://169.254.169.254/v1"},
        {
            "provider": "local",
            "default_model": MODEL,
            "base_url": upstream.base_url,
            "activate": "yes",
        },
        {"provider": "local", "default_model": MODEL, "base_url": upstream.base_url, "tenant": "x"},
    ):
        assert_error(stack.post("/api/llm/provider/configure", a, body), 400, "validation_error")
    assert_error(stack.post(f"{build_path}/cancel", a), 409, "build_finished")
    assert_error(stack.post("/api/build/start", c, {"prompt": "A shop"}), 409, "llm_unavailable")
    assert_error(
        stack.post("/api/build/start", None, {"prompt": "A shop"}), 401, "not_authenticated"
    )
    assert stack.get("/api/build/", a).json()["count"] == 1
    assert stack.get("/api/build/", c).json()["count"] == 0
    assert stack.get("/api/llm/provider/configs", a).json()["count"] == 1
    assert stack.get("/api/llm/usage/logs", a).json()["count"] == 5
    assert len(upstream.seen) == calls_before


def test_the_provider_keys_never_appear_in_a_response_or_a_log(flow):
    # Last in the module: it stops the processes so that their logs are complete.
    stack = flow["stack"]
    stack.stop()
    seen = "\n".join([*stack.bodies, stack.server.log(), stack.worker.log()])
    assert KEY_A not in seen and KEY_B not in seen
