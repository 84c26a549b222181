"""What survives a server restart: configs and their keys, and the start-up validation.

The server is a granian process (scripts/serve-web.sh); "restart" stops it and starts a new
one on the same port and database, as an operator (or a deploy) would.
"""

from tests.support.processes import closed_port_url, wait_for_validation
from tests.support.upstream import MODEL, MODELS_PATH

KEY_P = "sk-test-fake-key-0303"
KEY_UP = "sk-test-fake-key-0404"


def assert_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["error"]["code"] == code, response.text


def test_a_config_survives_requests_and_a_restart_and_its_key_still_works(stack, upstream):
    keys = stack.create_tenants("tenant_p", "tenant_q")
    p, q = keys["tenant_p"], keys["tenant_q"]
    stack.start_server()

    created = stack.post(
        "/api/llm/provider/configure",
        p,
        {
            "provider": "local",
            "base_url": upstream.base_url,
            "default_model": MODEL,
            "api_key": KEY_P,
            "metadata": {"timeout": 20, "team": "bikes"},
        },
    )
    assert created.status_code == 201, created.text
    config_id = created.json()["id"]
    config_path = f"/api/llm/provider/configs/{config_id}"
    before = stack.get(config_path, p).json()
    assert before == stack.get(config_path, p).json() == created.json()
    assert (before["api_key_last4"], before["key_status"], before["is_active"]) == (
        KEY_P[-4:],
        "ok",
        True,
    )
    status_before = stack.get("/api/llm/provider/status", p).json()

    # Bad input changes nothing, before or after the restart.
    assert_error(stack.call("PATCH", config_path, p, {"default_model": 5}), 400, "validation_error")
    assert_error(
        stack.call("PATCH", config_path, p, {"base_url": "http://169.254.169.254/v1"}),
        400,
        "validation_error",
    )
    assert_error(
        stack.post("/api/llm/provider/configure", p, {"provider": "local"}),
        400,
        "validation_error",
    )

    old_server = stack.server
    stack.restart_server()
    assert stack.server is not old_server and stack.server.port == old_server.port

    assert stack.get(config_path, p).json() == before
    assert stack.get("/api/llm/provider/status", p).json() == status_before
    listed = stack.get("/api/llm/provider/configs", p).json()
    assert [row["id"] for row in listed["results"]] == [config_id]

    # The stored key still decrypts and is sent to the provider, and only there.
    tested = stack.post("/api/llm/test", p)
    assert tested.json()["success"] is True, tested.text
    assert [(r.kind, r.authorization) for r in upstream.seen] == [("other", f"Bearer {KEY_P}")]
    after_test = stack.get(config_path, p).json()
    assert after_test["last_test_success"] is True
    assert stack.get("/api/llm/provider/status", p).json()["last_test"]["success"] is True

    # The other tenant: not found, not listed, no usage, and no fallback to P's provider.
    assert_error(stack.get(config_path, q), 404, "not_found")
    assert_error(stack.call("DELETE", config_path, q), 404, "not_found")
    assert stack.get("/api/llm/provider/configs", q).json()["count"] == 0
    q_status = stack.get("/api/llm/provider/status", q).json()
    assert (q_status["available"], q_status["source"], q_status["config"]) == (False, "none", None)
    q_test = stack.post("/api/llm/test", q).json()
    assert (q_test["success"], q_test["error"]["type"]) == (False, "configuration")
    assert stack.get("/api/llm/usage/logs", q).json()["count"] == 1  # its own failed test
    assert len(upstream.seen) == 1
    assert stack.get(config_path, p).json()["id"] == config_id

    stack.stop()
    assert KEY_P not in "\n".join([*stack.bodies, stack.server_logs()])


def test_startup_validation_reports_a_reachable_and_an_unreachable_provider(stack, upstream):
    keys = stack.create_tenants("tenant_up", "tenant_down")
    up, down = keys["tenant_up"], keys["tenant_down"]
    stack.start_server()  # LLM_VALIDATE_ON_STARTUP=false: nothing validated yet

    def configure(key, **fields):
        body = {"provider": "local", "default_model": MODEL, **fields}
        return stack.post("/api/llm/provider/configure", key, body)

    up_config = configure(up, base_url=upstream.base_url, api_key=KEY_UP).json()
    down_config = configure(down, base_url=closed_port_url()).json()
    # Refused configs are not created, so they cannot count in the validation.
    assert_error(configure(down, base_url="http://169.254.169.254/v1"), 400, "validation_error")
    assert_error(configure(down, base_url="ftp://127.0.0.1/v1"), 400, "validation_error")
    assert stack.get("/healthz").json()["checks"]["validation"] == {"status": "not_run"}

    stack.restart_server(LLM_VALIDATE_ON_STARTUP="true")
    body = wait_for_validation(stack.server.base_url, stack.server.process)

    validation = body["checks"]["validation"]
    assert body["status"] == "degraded"
    assert validation["mode"] == "models"
    assert (validation["reachable"], validation["unreachable"], validation["unusable"]) == (1, 1, 0)
    assert validation["total"] == 2
    healthz = stack.get("/healthz")
    assert healthz.json()["checks"]["validation"] == validation
    # Counts only: no tenant, config or key.
    assert "tenant_" not in healthz.text and KEY_UP not in healthz.text
    assert up_config["id"] not in healthz.text and down_config["id"] not in healthz.text

    server_log = stack.server.log()
    warnings = [
        line for line in server_log.splitlines() if " WARNING llm_providers.validation " in line
    ]
    assert len(warnings) == 1, warnings
    assert "unreachable: provider=local tenant=tenant_down" in warnings[0]
    assert KEY_UP not in server_log
    # The reachable one was asked for its model list, with its own key.
    models_requests = [req for req, _ in upstream.server.log if req.path == MODELS_PATH]
    assert [req.headers.get("Authorization") for req in models_requests] == [f"Bearer {KEY_UP}"]
    assert upstream.seen == []  # a model-list check spends no tokens

    # Each tenant sees its own outcome, and only its own config.
    up_status = stack.get("/api/llm/provider/status", up).json()
    down_status = stack.get("/api/llm/provider/status", down).json()
    assert up_status["last_test"]["success"] is True
    assert down_status["last_test"]["success"] is False
    assert down_status["config"]["last_error"]
    assert_error(stack.get(f"/api/llm/provider/configs/{down_config['id']}", up), 404, "not_found")
    assert_error(stack.get(f"/api/llm/provider/configs/{up_config['id']}", down), 404, "not_found")
    assert stack.get("/api/llm/provider/configs", up).json()["count"] == 1
    assert stack.get("/api/llm/provider/configs", down).json()["count"] == 1
