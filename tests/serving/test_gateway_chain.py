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


def _gateway(app):
    return app.app._gateway  # SyncViewThreads → ServingASGIHandler → its /v1 handler


def test_a_v1_route_is_resolved_once_and_its_match_kept(api_key):
    from django.urls import get_resolver

    app = served()
    for _ in range(2):
        answer = run(request(app, "GET", "/v1/models", headers=bearer(api_key)))
        assert answer.status == 200, answer.body

    kept_for, matches = _gateway(app)._matches
    assert kept_for is get_resolver()
    assert list(matches) == ["/v1/models"]
    assert matches["/v1/models"].url_name == get_resolver().resolve("/v1/models").url_name


def test_a_path_with_captured_arguments_is_resolved_each_time(api_key):
    app = served()

    for path in ("/v1/models/gpt-4o-mini", "/v1/no/such/thing"):
        answer = run(request(app, "GET", path, headers=bearer(api_key)))
        assert answer.status in (200, 404), answer.body

    assert _gateway(app)._matches[1] == {}  # a model id or a 404's path is never kept


def v1_teapot(request):
    from django.http import HttpResponse

    return HttpResponse(status=418)


urlpatterns = []  # this module as a URLconf (the test below)


def test_another_urlconf_is_followed_not_the_kept_matches(api_key, settings):
    from django.urls import path

    app = served()
    assert run(request(app, "GET", "/v1/models", headers=bearer(api_key))).status == 200
    urlpatterns[:] = [path("v1/models", v1_teapot)]
    try:
        settings.ROOT_URLCONF = __name__  # clears Django's URL caches: a new resolver

        answer = run(request(app, "GET", "/v1/models", headers=bearer(api_key)))
    finally:
        urlpatterns.clear()

    assert answer.status == 418
    assert _gateway(app)._matches[0].urlconf_name == __name__


def test_a_v1_error_response_is_logged_as_django_logs_it(api_key, caplog):
    app = served()

    with caplog.at_level("WARNING", logger="django.request"):
        answer = run(request(app, "GET", "/v1/no/such/thing", headers=bearer(api_key)))

    assert answer.status == 404
    assert [r.getMessage() for r in caplog.records if r.name == "django.request"] == [
        "Not Found: /v1/no/such/thing"
    ]
