"""A fake OpenAI-compatible provider that answers the build loop's prompts with valid JSON.

`FakeUpstream` serves it with pytest-httpserver on 127.0.0.1 for the tests and records
every chat request (what kind of prompt it was, which Authorization header came with it).
The answers depend only on the request, so any number of processes can share it:

- the build loop's blueprint prompt → `BLUEPRINT`;
- a review of `BLUEPRINT` → not passed (one issue); a review of `REFINED` → passed;
- the refine prompt → `REFINED`;
- anything else (the connection test's "Reply with the single word OK.") → "OK".

So a build with max_iterations ≥ 2 runs blueprint → review → refine → review and passes.
Each kind reports its own token counts (`TOKENS`), so sums over usage rows are checkable.

Run by hand for a walkthrough of `make run` (plain http.server, no test dependencies):
`.venv/bin/python -m tests.support.upstream --port 8091` serves http://127.0.0.1:8091/v1.
"""

import json
import threading
from dataclasses import dataclass

MODEL = "gemma-3-270m"
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

BLUEPRINT = {
    "title": "Bicycle shop",
    "summary": "A web shop for second-hand bicycles.",
    "components": [{"name": "catalogue", "responsibility": "list bicycles", "interfaces": []}],
    "data_model": [{"entity": "Bicycle", "fields": ["id", "price"]}],
    "apis": [{"method": "GET", "path": "/bicycles", "purpose": "browse"}],
    "risks": ["fraud"],
}
REFINED = {**BLUEPRINT, "summary": "A web shop for second-hand bicycles, with payments."}
ISSUE = "Payments are missing."

# (prompt_tokens, completion_tokens) per kind of request.
TOKENS = {"blueprint": (100, 50), "review": (80, 10), "refine": (120, 60), "other": (6, 2)}


def kind_of(prompt: str) -> str:
    if prompt.startswith("Design a system blueprint"):
        return "blueprint"
    if prompt.startswith("Review the blueprint"):
        return "review"
    if prompt.startswith("Improve the blueprint"):
        return "refine"
    return "other"


def answer(body: dict) -> tuple[str, str]:
    """(kind, content) for an OpenAI chat completion request body."""
    prompt = body["messages"][-1]["content"]
    kind = kind_of(prompt)
    if kind == "blueprint":
        return kind, json.dumps(BLUEPRINT)
    if kind == "refine":
        return kind, json.dumps(REFINED)
    if kind == "review":
        passed = REFINED["summary"] in prompt
        return kind, json.dumps({"passed": passed, "issues": [] if passed else [ISSUE]})
    return kind, "OK"


def chat_reply(content: str, prompt_tokens: int = 30, completion_tokens: int = 20) -> dict:
    """An OpenAI chat completion response."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1764300000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def reply_for(body: dict) -> tuple[str, dict]:
    kind, content = answer(body)
    return kind, chat_reply(content, *TOKENS[kind])


MODELS_REPLY = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}


@dataclass(frozen=True)
class SeenRequest:
    kind: str
    authorization: str | None
    model: str


class FakeUpstream:
    """The fake on pytest-httpserver (threaded: a web and a worker process may call at once)."""

    def __init__(self):
        from pytest_httpserver import HTTPServer

        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()

    def start(self):
        from werkzeug import Response

        def chat(request):
            body = json.loads(request.get_data())
            kind, reply = reply_for(body)
            with self._lock:
                self.seen.append(
                    SeenRequest(kind, request.headers.get("Authorization"), body["model"])
                )
            return Response(json.dumps(reply), content_type="application/json")

        self.server.expect_request(CHAT_PATH, method="POST").respond_with_handler(chat)
        self.server.expect_request(MODELS_PATH, method="GET").respond_with_json(MODELS_REPLY)
        self.server.start()
        return self

    def stop(self):
        self.server.clear()
        if self.server.is_running():
            self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v1")

    def kinds(self) -> list[str]:
        with self._lock:
            return [request.kind for request in self.seen]


def main(argv=None) -> None:
    """Serve the fake with the standard library only (for a walkthrough by hand)."""
    import argparse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args(argv)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == MODELS_PATH:
                self._send(200, MODELS_REPLY)
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):  # noqa: N802
            if self.path != CHAT_PATH:
                self._send(404, {"error": {"message": "not found"}})
                return
            length = int(self.headers.get("Content-Length") or 0)
            kind, reply = reply_for(json.loads(self.rfile.read(length)))
            self._send(200, reply)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"Fake OpenAI-compatible upstream on http://127.0.0.1:{args.port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
