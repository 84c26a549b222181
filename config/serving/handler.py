"""Django's ASGI handler without the thread hops an async-view request does not need.

Under ASGI every sync step of a request is a hop to a pooled thread and back. A warm /v1
chat call made 20 of them (measured: tests/serving/test_thread_hops.py), of which the call
itself needed two (its admission and its usage row); the other 18 were Django's plumbing,
each one queueing behind the usage INSERTs for one of the same WEB_THREADS threads:

- the middlewares built on `MiddlewareMixin` (security, sessions, common, CSRF, auth,
  messages, clickjacking): Django runs every `process_request` / `process_view` /
  `process_response` of theirs on a thread under ASGI, whether or not it does any I/O.
  `OnLoop*` below run each step on the loop when, for this request, it does none (headers,
  a lazy user, an unread session) and on the thread exactly as Django does otherwise (a
  session to save, messages to store, a CSRF check that reads the form, CSRF_USE_SESSIONS).
  settings.MIDDLEWARE keeps Django's own paths (the deploy checks look for them); the
  handler gives the instances it builds these classes.
- `request_started` / `request_finished` (the latter sent by `response.close()`): on a
  request whose sync calls take a thread per call (config/serving/threads.py) the
  receivers that look after the calling thread's database connections (`reset_queries`,
  `close_old_connections`) would run on whichever pooled thread is free, not on the ones
  the request's calls use; the pool runs them itself on the thread before each call.
  Django's other receivers (`close_caches`, `reset_urlconf`) touch the request's own
  context and no socket, and run on the loop. Any other sync receiver (a host project's)
  still gets its thread, as with Django.

- the task group Django runs the view and its disconnect listener in (every request), ended
  by raising an exception once the response is sent: that exception's traceback keeps the
  request, its response and its body alive in a reference cycle until the garbage
  collector's next pass (see `_respond_unless_left`, which does the same without one).

Requests whose sync calls share one sticky thread (every sync view) are otherwise handled
as Django handles them: their signals and `response.close()` run on that thread.
"""

import asyncio
import hashlib
import inspect
from contextlib import closing, suppress

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core import signals
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.core.handlers.base import BaseHandler, reset_urlconf
from django.db import close_old_connections, reset_queries
from django.http import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import get_resolver, set_script_prefix
from django.utils.log import log_response

from .limits import end_for_a_client_that_left
from .threads import THREAD_PER_CALL

# request_started / request_finished receivers the pool runs on the thread before each call.
POOL_RECEIVERS = frozenset({reset_queries, close_old_connections})
# Receivers that touch only the request's own context, never a socket or the database.
LOOP_RECEIVERS = frozenset({close_caches, reset_urlconf})

# A response closer that may run on the loop carries this attribute (set to True).
ON_LOOP = "switchyard_on_loop"


# -- middlewares ---------------------------------------------------------------------------
class _OnLoop:
    """`MiddlewareMixin.__acall__`, each step on the loop when it needs no thread."""

    def request_on_loop(self, request) -> bool:
        return True

    def response_on_loop(self, request, response) -> bool:
        return True

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self.request_on_loop(request):
                response = self.process_request(request)
            else:
                response = await sync_to_async(self.process_request)(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_on_loop(request, response):
                response = self.process_response(request, response)
            else:
                response = await sync_to_async(self.process_response)(request, response)
        return response


class OnLoopSecurityMiddleware(_OnLoop, SecurityMiddleware):
    """Redirects and headers from settings: never any I/O."""


class OnLoopCommonMiddleware(_OnLoop, CommonMiddleware):
    """User-agent checks, slash redirects (a URL resolve), Content-Length: no I/O."""


class OnLoopXFrameOptionsMiddleware(_OnLoop, XFrameOptionsMiddleware):
    """One header."""


class OnLoopAuthenticationMiddleware(_OnLoop, AuthenticationMiddleware):
    """Sets a lazy `request.user`: the session is read only when a view asks for it (on
    the view's thread)."""


class OnLoopSessionMiddleware(_OnLoop, SessionMiddleware):
    """Creating the session store reads nothing; saving it writes, so a session that was
    read or changed (or SESSION_SAVE_EVERY_REQUEST) is finished on the thread."""

    def response_on_loop(self, request, response) -> bool:
        session = getattr(request, "session", None)  # absent: Django's step does nothing
        if session is None:
            return True
        return not (session.accessed or session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class OnLoopMessageMiddleware(_OnLoop, MessageMiddleware):
    """Creating the storage reads nothing; messages read or added are stored (cookie or
    session) on the thread."""

    def response_on_loop(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or not (storage.used or storage.added_new)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class OnLoopCsrfViewMiddleware(_OnLoop, CsrfViewMiddleware):
    """The token lives in a cookie (CSRF_USE_SESSIONS off): reading and setting it is
    header work. A view exempt from CSRF or a safe method is accepted on the loop; any
    other request is checked on the thread (the check may read the form)."""

    def request_on_loop(self, request) -> bool:
        return not settings.CSRF_USE_SESSIONS

    def response_on_loop(self, request, response) -> bool:
        return not settings.CSRF_USE_SESSIONS

    async def aprocess_view(self, request, callback, callback_args, callback_kwargs):
        decided = (
            getattr(request, "csrf_processing_done", False)
            or getattr(callback, "csrf_exempt", False)
            or request.method in SAFE_METHODS
        )
        if decided and not settings.CSRF_USE_SESSIONS:
            return self.process_view(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(self.process_view)(
            request, callback, callback_args, callback_kwargs
        )


# Exactly these classes (a host project's subclass may do I/O of its own: left as it is).
ON_LOOP_CLASSES = {
    SecurityMiddleware: OnLoopSecurityMiddleware,
    CommonMiddleware: OnLoopCommonMiddleware,
    XFrameOptionsMiddleware: OnLoopXFrameOptionsMiddleware,
    AuthenticationMiddleware: OnLoopAuthenticationMiddleware,
    SessionMiddleware: OnLoopSessionMiddleware,
    MessageMiddleware: OnLoopMessageMiddleware,
    CsrfViewMiddleware: OnLoopCsrfViewMiddleware,
}


def _chain_instances(handler):
    """The middleware instances of a loaded chain, outermost first.

    Each link is `convert_exception_to_response(instance)` (functools.wraps: the instance
    is its `__wrapped__`), and each instance calls the next link as `get_response`.
    """
    link = handler
    while link is not None:
        instance = getattr(link, "__wrapped__", None)
        if instance is None or not hasattr(instance, "get_response"):
            return
        yield instance
        link = instance.get_response


# -- signals and closing -------------------------------------------------------------------
async def _send_on_loop(signal, sender, **named) -> None:
    """`signal.asend` for a thread-per-call request: the pool's receivers skipped, the
    request's own ones on the loop, any other sync receiver on a thread as Django does."""
    sync_receivers, async_receivers = signal._live_receivers(sender)
    elsewhere = []
    for receiver in sync_receivers:
        if receiver in LOOP_RECEIVERS:
            receiver(signal=signal, sender=sender, **named)
        elif receiver not in POOL_RECEIVERS:
            elsewhere.append(receiver)
    if elsewhere:

        def send_elsewhere():
            for receiver in elsewhere:
                receiver(signal=signal, sender=sender, **named)

        await sync_to_async(send_elsewhere)()
    if async_receivers:
        await asyncio.gather(
            *(receiver(signal=signal, sender=sender, **named) for receiver in async_receivers)
        )


def _closes_on_loop(closer) -> bool:
    # The request's own close (its body buffer; Django appends it to every response).
    if getattr(closer, "__func__", None) is ASGIRequest.close:
        return True
    return getattr(closer, ON_LOOP, False) is True


async def _close(response) -> None:
    """`response.close()` for a thread-per-call request: on the loop when every closer
    may run there (else on a thread, as Django does); request_finished as above."""
    if type(response).close is not HttpResponseBase.close or not all(
        _closes_on_loop(closer) for closer in response._resource_closers
    ):
        # Its own close, or a closer that may do I/O (a sync iterator's close, a file):
        # Django's way, on a thread, signals included.
        await sync_to_async(response.close)()
        return
    for closer in response._resource_closers:  # HttpResponseBase.close, minus the signal
        with suppress(Exception):  # as Django: a closer's failure does not stop the others
            closer()
    response._resource_closers.clear()
    response.closed = True
    await _send_on_loop(signals.request_finished, response._handler_class)


async def _send_as_django(signal, sender, **named) -> None:
    await signal.asend(sender=sender, **named)


async def _close_as_django(response) -> None:
    await sync_to_async(response.close)()


# ServingASGIHandler.handle follows Django's ASGIHandler.handle (its task group written as
# _respond_unless_left), _close follows HttpResponseBase.close, and _GatewayHandler's
# get_response_async and resolve_request follow BaseHandler's, line by line:
# tests/serving/test_thread_hops.py compares their sources' digests with these, so a
# Django upgrade that changes any of them is read and followed here, not silently
# diverged from.
FOLLOWED_SOURCES = {
    "ASGIHandler.handle": (
        ASGIHandler.handle,
        "c91f27c7fcdc3fff4f1c7082e91cb30f0bfaa5781ca632a116b1d9e607fd752a",
    ),
    "HttpResponseBase.close": (
        HttpResponseBase.close,
        "84589f5b23acbb23aa9010f3506ef411b72b1053f2fc2764590e2b3bf3470438",
    ),
    "BaseHandler.get_response_async": (
        BaseHandler.get_response_async,
        "ad82c920df0cebbb52b1ebafe6ab8b5541f200c39fa954a148b01f60725b715b",
    ),
    "BaseHandler.resolve_request": (
        BaseHandler.resolve_request,
        "ff178c3d63eebcd3e38110341593518dcd67d84cff94bbc7dd5aa323637cba6d",
    ),
}


def source_digest(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


# -- the gateway's own middleware chain ------------------------------------------------------
# /v1 (config/urls.py) is an API of bearer keys: no cookie, no login, no page. These
# middlewares serve the browser (the admin and the browsable REST API) and do nothing a /v1
# request uses — a session and its user that no view reads, a CSRF token that no /v1 view
# checks (all are csrf_exempt: there is no cookie to forge), flash messages, the admin
# login's lockout — yet cost a tenth of a warm call's CPU (bench/concurrency/cpu_asgi.py
# --drop-middleware). /v1 requests are handled by a chain without them; every other
# middleware in settings.MIDDLEWARE (request ids, tracing, security headers, static files,
# body limits, CommonMiddleware's host check, a host project's own) runs on /v1 as anywhere.
GATEWAY_PREFIX = "/v1"
BROWSER_ONLY_MIDDLEWARE = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)


def is_gateway_path(path: str) -> bool:
    return path == GATEWAY_PREFIX or path.startswith(GATEWAY_PREFIX + "/")


class ServingASGIHandler(ASGIHandler):
    """config.asgi's Django application (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self._gateway = _GatewayHandler()

    async def get_response_async(self, request):
        if is_gateway_path(request.path_info):
            return await self._gateway.get_response_async(request)
        return await super().get_response_async(request)

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async)
        if not is_async:
            return
        for instance in _chain_instances(self._middleware_chain):
            on_loop = ON_LOOP_CLASSES.get(type(instance))
            if on_loop is not None:
                instance.__class__ = on_loop
        # Django adapted the CSRF middleware's process_view to a thread when it loaded it.
        self._view_middleware = [self._on_loop_view_step(step) for step in self._view_middleware]

    @staticmethod
    def _on_loop_view_step(step):
        instance = getattr(getattr(step, "func", None), "__self__", None)
        if isinstance(instance, OnLoopCsrfViewMiddleware):
            return instance.aprocess_view
        return step

    async def handle(self, scope, receive, send):
        # Django's handle, with _respond_unless_left for its task group and, for a request
        # whose sync calls take a thread per call, _send_on_loop for asend and _close for
        # response.close(); any other request keeps Django's own (on its sticky thread).
        if scope.get(THREAD_PER_CALL):
            send_signal, close = _send_on_loop, _close
        else:
            send_signal, close = _send_as_django, _close_as_django
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return await end_for_a_client_that_left(send)
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            await send_signal(signals.request_started, self.__class__, scope=scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                await self.send_response(error_response, send)
                await close(error_response)
                return

            response = await self._respond_unless_left(request, receive, send)
            if response is None:  # the client left before its answer
                await end_for_a_client_that_left(send)
                await send_signal(signals.request_finished, self.__class__)
            else:
                await close(response)

    async def _respond_unless_left(self, request, receive, send):
        """Django's task group around the view and its disconnect listener, without the
        reference cycle it leaves behind.

        Django ends that group by raising an exception once the response is sent; the
        exception group's traceback holds this frame, and with it the request, the
        response and the body, so every request left ~70 objects of cyclic garbage (its
        body buffer among them) for the collector: measured with gc.DEBUG_SAVEALL, and in
        pauses of 50-250 ms on the loop at 1,024 open requests. The same behaviour, done
        with a done-callback: when the client leaves (the listener raises), the view is
        cancelled; once the response is sent, the listener is. The response, or None when
        the client left before it was sent.
        """
        task = asyncio.current_task()
        listener = asyncio.get_running_loop().create_task(self.listen_for_disconnect(receive))
        ended = []  # the listener's exception, once it cancelled the view
        sent = False

        def on_listener_done(done):
            if done.cancelled():
                return
            exception = done.exception()  # retrieved, also when it comes too late to matter
            # As in a task group, a listener that returns (python -O drops Django's
            # assert on an unexpected message) leaves the view alone.
            if sent or exception is None:
                return
            ended.append(exception)
            task.cancel()

        listener.add_done_callback(on_listener_done)
        response = None
        try:
            try:
                response = await self.run_get_response(request)
                await self.send_response(response, send)
            finally:
                sent = True
                listener.cancel()
                if ended:
                    task.uncancel()
        except asyncio.CancelledError:
            if not ended or task.cancelling():
                raise  # cancelled from outside (shutdown), not by the client leaving
        if ended and not isinstance(ended[0], RequestAborted):
            raise ended[0]  # the listener's own failure, as Django raises it
        return response


class _GatewayHandler(ServingASGIHandler):
    """The chain /v1 requests go through: settings.MIDDLEWARE less BROWSER_ONLY_MIDDLEWARE.

    Two of Django's per-request steps are done more cheaply here, with the same result
    (measured: bench/README.md, "the gateway's URL resolve"):
    - `BaseHandler.get_response_async` starts with `set_urlconf(settings.ROOT_URLCONF)`.
      A request's context holds no urlconf of its own (every request's end resets it,
      `reset_urlconf`), and without one Django resolves with settings.ROOT_URLCONF: the
      same resolver. Setting it copies the context's asgiref storage on every call.
    - `resolve_request`: the match of a path without captured arguments (every /v1 route
      but a model's detail and the 404) is kept per resolver, so a chat call does not walk
      Django's URL patterns each time. A request with its own `urlconf`, and every other
      path, is resolved as Django resolves it.
    """

    MAX_KEPT_MATCHES = 64

    def __init__(self):
        ASGIHandler.__init__(self)  # its own chain only (no gateway of its own)
        self._matches: tuple = (None, {})  # (the resolver, {path: its ResolverMatch})

    async def get_response_async(self, request):
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            await sync_to_async(log_response, thread_sensitive=False)(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,
                request=request,
            )
        return response

    def resolve_request(self, request):
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        resolver = get_resolver()
        kept_for, matches = self._matches
        if kept_for is not resolver:  # the URLconf was reloaded (tests): start again
            matches = {}
            self._matches = (resolver, matches)
        path = request.path_info
        match = matches.get(path)
        if match is None:
            match = resolver.resolve(path)
            if not match.args and not match.kwargs and len(matches) < self.MAX_KEPT_MATCHES:
                matches[path] = match
        request.resolver_match = match
        return match

    def load_middleware(self, is_async=False):
        # Django's loader reads settings.MIDDLEWARE: given the gateway's list while it runs
        # (once, at start-up, before any request).
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path not in BROWSER_ONLY_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full
