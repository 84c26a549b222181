"""One deployment's processes for a test: its own database, the web server, db_worker.

Nothing here touches the pytest-django test database: the processes share only their own
database (see tests/support/processes.py), exactly as a deployment's processes do.
"""

import json

import requests

from tests.support.processes import (
    DbWorker,
    WebServer,
    manage,
    process_env,
)

CREATE_TENANTS = """
import io
from django.core.management import call_command
for tenant_id in {ids!r}:
    out = io.StringIO()
    call_command("create_tenant", tenant_id, name=tenant_id, stdout=out)
    print(tenant_id, out.getvalue().strip().splitlines()[-1])
"""


class Stack:
    """The processes of one deployment; every response body seen is kept in `bodies`."""

    def __init__(self, tmp_path, database_url: str, upstream):
        self.tmp_path = tmp_path
        self.upstream = upstream
        self.env = process_env(database_url, tmp_path)
        self.server: WebServer | None = None
        self.worker: DbWorker | None = None
        self.bodies: list[str] = []
        self.servers_started = 0

    # -- processes ---------------------------------------------------------------------

    def migrate(self):
        manage(self.env, "migrate", "--noinput", "-v", "0")

    def create_tenants(self, *tenant_ids: str) -> dict[str, str]:
        """Create tenants with `manage.py create_tenant`; {tenant id: its API key}."""
        out = manage(self.env, "shell", "-c", CREATE_TENANTS.format(ids=list(tenant_ids))).stdout
        return dict(line.split(" ", 1) for line in out.strip().splitlines()[-len(tenant_ids) :])

    def start_server(self, port: int | None = None, **env_overrides) -> WebServer:
        """Start the web server on the stack's database (on a free port unless given)."""
        self.servers_started += 1
        env = {**self.env, **{k: str(v) for k, v in env_overrides.items()}}
        log = self.tmp_path / f"server-{self.servers_started}.log"
        self.server = WebServer(env, log, port=port).start()
        return self.server

    def restart_server(self, **env_overrides) -> WebServer:
        """Stop the running web server, then start a new one on the same port and database."""
        old = self.server
        old.stop()
        assert old.process.returncode is not None
        return self.start_server(port=old.port, **env_overrides)

    def server_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("server-*.log")))

    def stop_server(self):
        if self.server is not None:
            self.server.stop()

    def start_worker(self) -> DbWorker:
        self.worker = DbWorker(self.env, self.tmp_path / "worker.log").start()
        return self.worker

    def stop(self):
        for process in (self.worker, self.server):
            if process is not None:
                process.stop()

    # -- HTTP ----------------------------------------------------------------------------

    def call(self, method: str, path: str, key: str | None = None, body=None, **kwargs):
        """One request to the running server; the response (its body is recorded)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        url = path if path.startswith("http") else f"{self.server.base_url}{path}"
        response = requests.request(
            method, url, headers=headers, json=body, timeout=30, allow_redirects=False, **kwargs
        )
        self.bodies.append(response.text)
        self.bodies.append(json.dumps(dict(response.headers)))
        return response

    def post_raw(self, path, key, data: bytes, content_type="application/json"):
        """POST a body as given (malformed JSON, say)."""
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        return self.call("POST", path, None, data=data, headers=headers)

    def get(self, path, key=None, **kwargs):
        return self.call("GET", path, key, **kwargs)

    def post(self, path, key=None, body=None, **kwargs):
        return self.call("POST", path, key, body, **kwargs)
