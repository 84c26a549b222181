"""/v1 requests go through settings.MIDDLEWARE less the browser's middlewares
(config/serving/handler.py, BROWSER_ONLY_MIDDLEWARE); every other path through all of it.

Driven in process through the served stack (tests/support/asgi.py), as config.asgi builds it.
"""

import pytest
from asgiref.sync import markcoroutinefunction

from config.serving.handler import BROWSER_ONLY_MIDDLEWARE, is_gateway_path
from tests.support.asgi import request, run, served

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[tuple[str, bool]] = []


class HostMiddleware:
    """A host project's own middleware: it must run on /v1 too. It records whether the
    browser's middlewares ran before it (they set request.session and request.user)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        SEEN.append((request.path, hasattr(request, "session") or hasattr(request, "user")))
        response = await self.get_response(request)
        response["X-Host-Middleware"] = "ran"
        return response


@pytest.fixture(autouse=True)
def _host_middleware(settings, fresh_gateway):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.HostMiddleware"]
    SEEN.clear()


def bearer(api_key):
    return [("authorization", f"Bearer {api_key.plain_key}")]


def test_v1_skips_the_browser_middlewares_and_keeps_every_other(api_key):
    app = served()

    answer = run(request(app, "GET", "/v1/models", headers=bearer(api_key)))

    assert answer.status == 200, answer.body
    assert SEEN == [("/v1/models", False)]  # no session, no user: their middlewares did not run
    assert "vary" not in answer.headers or "cookie" not in answer.headers["vary"].lower()
    assert answer.cookies == {}
    # …and the others did: the host's, request ids, security headers, clickjacking.
    assert answer.headers["x-host-middleware"] == "ran"
    assert answer.headers["x-request-id"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"


def test_an_unknown_v1_path_and_bare_v1_are_the_gateways_too(api_key):
    app = served()

    for path in ("/v1/no/such/thing", "/v1"):
        answer = run(request(app, "GET", path, headers=bearer(api_key)))
        assert answer.status == 404
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.headers["x-host-middleware"] == "ran"

    assert SEEN == [("/v1/no/such/thing", False), ("/v1", False)]


def test_the_admin_goes_through_every_middleware(api_key):
    app = served()

    login = run(request(app, "GET", "/admin/login/"))

    assert login.status == 200
    assert SEEN == [("/admin/login/", True)]  # session and user were set before it
    assert "csrftoken" in login.cookies  # the CSRF middleware ran
    assert login.headers["x-host-middleware"] == "ran"


def test_an_invalid_host_is_refused_on_v1_as_anywhere(api_key, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    app = served()

    answer = run(request(app, "GET", "/v1/models", headers=bearer(api_key)))

    assert answer.status == 400


@pytest.mark.parametrize(
    ("path", "gateway"),
    [
        ("/v1/chat/completions", True),
        ("/v1", True),
        ("/v1x", False),
        ("/admin/", False),
        ("/api/llm/test", False),
        ("/", False),
    ],
)
def test_which_paths_are_the_gateways(path, gateway):
    assert is_gateway_path(path) is gateway


def test_the_browser_middlewares_are_real_entries_of_the_settings(settings):
    # A renamed path would silently put the browser's middlewares back on /v1.
    assert BROWSER_ONLY_MIDDLEWARE <= set(settings.MIDDLEWARE)
