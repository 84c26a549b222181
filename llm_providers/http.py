"""HTTP for provider calls: pooled sessions, timeouts, a deadline, retries (SPEC §5).

- One `requests.Session` per process and (scheme, host, port), created once under a lock
  and shared by all threads: its urllib3 pool is thread-safe and keeps connections alive;
  cookies are never stored (tenants share sessions) and nothing is read from the
  environment per request (proxies are resolved once per host).
- Connect timeout 5 s, read timeout `LLM_REQUEST_TIMEOUT`, and an overall deadline per
  call (`LLM_REQUEST_DEADLINE`, default twice the read timeout) that also bounds a body
  that trickles in and the waits between attempts.
- Retries (`LLM_MAX_RETRIES`) for connection errors, timeouts, 408, 409, 429, 498 and
  >= 500, waiting `retry-after-ms` / `Retry-After` when given (a longer wait than
  RETRY_AFTER_CAP is not retried: the caller gets the error with `retry_after` set) or
  exponential backoff with jitter. Never retried: 400, 401, 403, 404, 422, an exhausted
  quota. `x-should-retry: false` is obeyed.
- Tenant-supplied base URLs go through a session whose connections check the address
  actually connected to with `urlsafety.check_address` before a byte is sent; a refused
  address is a `configuration` error.

`sleep` is looked up at call time so tests can patch `llm_providers.http.sleep`.
"""

import email.utils
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookiePolicy
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import ErrorType, ProviderError
from .providers.base import HttpRequestSpec
from .urlsafety import UnsafeBaseURL, check_address

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
RETRY_AFTER_CAP = 60.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
POOL_MAXSIZE = 32
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
RETRIED = frozenset({408, 409, 429, 498})

sleep = time.sleep


# -- sessions ---------------------------------------------------------------------------
class _RefuseAllCookies(CookiePolicy):
    netscape = True
    rfc2965 = hide_cookie2 = False

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False

    def domain_return_ok(self, domain, request):
        return False

    def path_return_ok(self, path, request):
        return False


class RefusedAddress(UnsafeBaseURL):
    """The connection reached an address the base-URL policy refuses; nothing was sent."""


class _CheckedConnectionMixin:
    def _new_conn(self):
        sock = super()._new_conn()
        try:
            check_address(sock.getpeername()[0])
        except UnsafeBaseURL as exc:
            sock.close()
            raise RefusedAddress(str(exc)) from None
        return sock


class CheckedHTTPConnection(_CheckedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class PooledAdapter(HTTPAdapter):
    """HTTPAdapter with the per-call work our sessions do not need taken out.

    Measured on the /v1 hot path (bench/README.md): finding the connection pool (URL
    parsing, pool-key normalisation, the pool manager's lookup) and copying Set-Cookie
    headers into a cookie jar were ~20 % of the adapter's CPU. Each of our sessions
    serves one origin, so its pool is remembered per URL (while it stays open, and only
    without proxies or client certificates); nothing reads a response's cookies (the
    sessions refuse them). `send` itself is HTTPAdapter's, so test doubles that patch it
    (`responses`) still intercept.
    """

    def __init__(self, *args, **kwargs):
        self._pools: dict[str, HTTPConnectionPool] = {}
        super().__init__(*args, **kwargs)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        if proxies or cert is not None or verify is not True:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        pool = self._pools.get(request.url)
        if pool is None or pool.pool is None:  # a closed pool has no queue any more
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._pools) >= 64:
                self._pools.clear()
            self._pools[request.url] = pool
        return pool

    def build_response(self, req, resp):
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url
        response.request = req
        response.connection = self
        return response

    def close(self):
        self._pools.clear()
        super().close()


class CheckedAddressAdapter(PooledAdapter):
    """An HTTPAdapter whose connections verify the peer address right after connecting."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": CheckedHTTPConnectionPool,
            "https": CheckedHTTPSConnectionPool,
        }


_sessions: dict[tuple[str, str, int, bool], requests.Session] = {}
_sessions_lock = threading.Lock()


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def get_session(url: str, *, check: bool = False) -> requests.Session:
    """The process-wide pooled session for `url`'s origin (checked or not)."""
    key = (*_origin(url), check)
    session = _sessions.get(key)
    if session is not None:
        return session
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = _new_session(url, check=check)
    return session


def _new_session(url: str, *, check: bool) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no per-request environment/netrc lookups
    session.cookies.set_policy(_RefuseAllCookies())
    adapter_class = CheckedAddressAdapter if check else PooledAdapter
    adapter = adapter_class(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if not check:
        # Operator-configured hosts may sit behind the environment's proxy; tenant-supplied
        # ones never do, because the address check must see the real peer.
        session.proxies.update(requests.utils.get_environ_proxies(url))
    return session


def _forget_sessions_after_fork() -> None:
    # A forked worker must not share pooled sockets with its parent: start afresh.
    global _sessions_lock
    _sessions.clear()
    _sessions_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)


def close_sessions() -> None:
    """Close every pooled session (tests, and forked workers that must not share sockets)."""
    with _sessions_lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()


# -- one call, with retries ---------------------------------------------------------------
@dataclass
class HttpResult:
    """The outcome of a call: a 2xx body (or open stream), or a normalised error."""

    status_code: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes | None = None
    response: requests.Response | None = None  # open, for streams: the caller closes it
    error: ProviderError | None = None
    attempts: int = 0
    upstream_seconds: float = 0.0  # time on the wire, waits between attempts excluded

    @property
    def ok(self) -> bool:
        return self.error is None


ErrorMapper = Callable[[int, bytes | None, Mapping[str, str]], ProviderError]


def default_deadline(read_timeout: float) -> float:
    return float(getattr(settings, "LLM_REQUEST_DEADLINE", None) or 2 * read_timeout)


def send(
    spec: HttpRequestSpec,
    *,
    map_error: ErrorMapper,
    check: bool = False,
    max_retries: int | None = None,
    read_timeout: float | None = None,
    deadline: float | None = None,
    sleep_fn: Callable[[float], None] | None = None,
) -> HttpResult:
    """Send `spec`, retrying what is worth retrying; never raises for network trouble."""
    if max_retries is None:
        max_retries = settings.LLM_MAX_RETRIES
    if read_timeout is None:
        read_timeout = settings.LLM_REQUEST_TIMEOUT
    if deadline is None:
        deadline = default_deadline(read_timeout)
    wait_fn = sleep_fn or sleep
    session = get_session(spec.url, check=check)
    headers = spec.headers
    if spec.method != "GET":
        # One key for every attempt, so a provider can drop a duplicate (as the SDKs do).
        headers = {**headers, "Idempotency-Key": f"switchyard-{uuid.uuid4().hex}"}

    started = time.monotonic()
    end = started + deadline
    result = HttpResult()
    while True:
        result.attempts += 1
        remaining = end - time.monotonic()
        if remaining <= 0:
            result.error = _deadline_error(deadline)
            return result
        retryable = False
        t0 = time.monotonic()
        response = None
        try:
            # The adapter directly, not `Session.send`: see `_send_prepared`.
            response = _send_prepared(
                session,
                _prepare(session, spec, headers),
                (min(CONNECT_TIMEOUT, remaining), min(read_timeout, remaining)),
            )
            result.status_code = response.status_code
            result.headers = response.headers
            if 200 <= response.status_code < 300:
                if spec.stream:
                    result.response = response
                    result.error = None
                    return result
                result.body = _read_body(response, end, MAX_BODY_BYTES)
                result.error = None
                return result
            body = _read_body(response, end, MAX_ERROR_BODY_BYTES, truncate=True)
            result.error, retryable = _status_error(response, body, map_error)
        except _BodyProblem as problem:
            _close(response)
            result.error, retryable = problem.error, problem.retryable
            if result.error.type == ErrorType.BAD_RESPONSE:
                result.error.status_code = result.status_code
        except (requests.RequestException, UnsafeBaseURL, OSError) as exc:
            _close(response)
            result.error, retryable = _transport_error(exc, spec.url)
        except ValueError:
            # e.g. a key with characters no HTTP header can carry; the text may hold it.
            _close(response)
            result.error = ProviderError(
                ErrorType.CONFIGURATION, "The request could not be built (check the key)."
            )
            retryable = False
        finally:
            result.upstream_seconds += time.monotonic() - t0

        if not retryable or result.attempts > max_retries:
            return result
        wait = _wait_before_retry(result.error, result.attempts)
        if wait is None or time.monotonic() + wait >= end:
            return result
        logger.info(
            "retrying %s %s in %.2fs after %s (attempt %d of %d)",
            spec.method,
            _safe_url(spec.url),
            wait,
            result.error.type,
            result.attempts + 1,
            max_retries + 1,
        )
        wait_fn(wait)


def _send_prepared(session: requests.Session, prepared, timeout) -> requests.Response:
    """`HTTPAdapter.send` on the session's adapter, without `Session.send` around it.

    Measured on the /v1 hot path (bench/README.md): `Session.send` adds its hooks, cookie
    jars (ours refuse every cookie), redirect resolution (we never follow redirects: a
    3xx is reported) and per-call proxy resolution on top of the adapter, ~40 µs a call.
    The proxies are the session's own, resolved once when it was made. Test doubles
    (`responses`) intercept at `HTTPAdapter.send`, so they still see every request.
    """
    adapter = session.get_adapter(prepared.url)
    return adapter.send(
        prepared, stream=True, timeout=timeout, verify=True, cert=None, proxies=session.proxies
    )


# spec.url → its prepared form (None: the URL carries credentials, so take the full path)
_prepared_urls: dict[str, str | None] = {}


def _prepare(session: requests.Session, spec: HttpRequestSpec, headers) -> requests.PreparedRequest:
    """The request as `session.request` would prepare it, without its per-call work.

    Measured on the /v1 hot path (bench/README.md): `PreparedRequest.prepare` parses and
    re-quotes the URL twice (once for URL credentials), builds an empty cookie jar and
    a Cookie header from it, on every call, ~60 µs. Our sessions have no cookies, no auth
    and no per-request environment; the URL's preparation depends on the URL alone, so
    it is done once per URL, and the headers are still validated on every call.
    """
    url = _prepared_urls.get(spec.url, _UNPREPARED)
    if url is _UNPREPARED:
        url = _prepared_urls[spec.url] = _prepare_url(spec.url)
    if url is None:
        return _prepare_fully(session, spec, headers)
    prepared = requests.PreparedRequest()
    prepared.method = spec.method.upper()
    prepared.url = url
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    for header in merged.items():
        check_header_validity(header)
    prepared.headers = merged
    body = None
    if spec.json is not None:
        try:
            body = json.dumps(spec.json, allow_nan=False).encode("utf-8")
        except ValueError as exc:
            raise requests.exceptions.InvalidJSONError(exc, request=prepared) from None
        merged["Content-Length"] = str(len(body))
        if "content-type" not in merged:
            merged["Content-Type"] = "application/json"
    elif prepared.method not in ("GET", "HEAD") and "content-length" not in merged:
        merged["Content-Length"] = "0"
    prepared.body = body
    prepared.hooks = {"response": []}
    return prepared


_UNPREPARED = object()


def _prepare_url(url: str) -> str | None:
    """`url` as requests prepares it, or None when preparing adds credentials from it."""
    if len(_prepared_urls) >= 10_000:
        _prepared_urls.clear()  # bounded: tenants' base URLs are few
    probe = requests.PreparedRequest()
    probe.prepare(method="GET", url=url)  # raises InvalidURL & co. as a full prepare would
    if "Authorization" in probe.headers:
        return None
    return probe.url


def _prepare_fully(session, spec: HttpRequestSpec, headers) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=spec.method,
        url=spec.url,
        headers={**session.headers, **headers},
        json=spec.json,
        hooks=session.hooks,
    )
    return prepared


class _BodyProblem(Exception):
    def __init__(self, error: ProviderError, retryable: bool):
        self.error, self.retryable = error, retryable


def _read_body(response, end: float, limit: int, *, truncate: bool = False) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if truncate:
                    break
                raise _BodyProblem(
                    ProviderError(
                        ErrorType.BAD_RESPONSE, f"The reply is larger than {limit} bytes."
                    ),
                    False,
                )
            if time.monotonic() > end:
                raise _BodyProblem(_deadline_error(None), False)
    except requests.exceptions.ContentDecodingError:
        raise _BodyProblem(
            ProviderError(ErrorType.BAD_RESPONSE, "The reply's content encoding is broken."), False
        ) from None
    except (requests.RequestException, OSError) as exc:
        raise _BodyProblem(*_transport_error(exc, response.url)) from None
    finally:
        if truncate:
            response.close()
    return b"".join(chunks)


def _close(response) -> None:
    if response is not None:
        response.close()


def _status_error(response, body: bytes, map_error: ErrorMapper) -> tuple[ProviderError, bool]:
    status = response.status_code
    headers = response.headers
    if 300 <= status < 400:
        return (
            ProviderError(
                ErrorType.CONFIGURATION,
                f"The provider answered with a redirect (HTTP {status}); check the base URL.",
                status_code=status,
            ),
            False,
        )
    error = map_error(status, body, headers)
    error.status_code = status
    error.retry_after = retry_after_seconds(headers)
    return error, is_retryable(status, error, headers)


def is_retryable(status: int, error: ProviderError, headers: Mapping[str, str]) -> bool:
    if status in NEVER_RETRIED or error.type == ErrorType.QUOTA_EXCEEDED:
        return False
    should = (headers.get("x-should-retry") or "").strip().lower()
    if should == "false":
        return False
    if should == "true":
        return True
    return status in RETRIED or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait (retry-after-ms, else Retry-After seconds or date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter, as the official SDKs do (attempt counts from 1)."""
    base = min(BACKOFF_INITIAL * 2 ** (attempt - 1), BACKOFF_MAX)
    return base * (1 - 0.25 * random.random())


def _wait_before_retry(error: ProviderError, attempt: int) -> float | None:
    if error.retry_after is not None:
        if error.retry_after > RETRY_AFTER_CAP:
            return None  # the server asks for longer than we wait: report it instead
        return error.retry_after
    return backoff_seconds(attempt)


def _deadline_error(deadline: float | None) -> ProviderError:
    after = f" of {deadline:g}s" if deadline else ""
    return ProviderError(ErrorType.TIMEOUT, f"The call exceeded its deadline{after}.")


def _transport_error(exc: BaseException, url: str) -> tuple[ProviderError, bool]:
    host = urlsplit(url).hostname or "the provider"
    if isinstance(exc, UnsafeBaseURL):
        return ProviderError(ErrorType.CONFIGURATION, f"Refused base URL address: {exc}"), False
    if isinstance(exc, requests.exceptions.Timeout) or _caused_by(
        exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)
    ):
        return ProviderError(ErrorType.TIMEOUT, f"{host} did not answer in time."), True
    if isinstance(exc, requests.exceptions.SSLError):
        return ProviderError(ErrorType.CONNECTION, f"TLS with {host} failed."), False
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return ProviderError(
            ErrorType.CONFIGURATION, "A request header is not valid (check the key)."
        ), False
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        return ProviderError(
            ErrorType.INVALID_REQUEST, "The request body is not valid JSON (NaN?)."
        ), False
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    ):
        return ProviderError(ErrorType.CONFIGURATION, "The provider URL is not valid."), False
    return ProviderError(ErrorType.CONNECTION, f"{host}: {_connection_reason(exc)}."), True


def _caused_by(exc: BaseException, kinds) -> bool:
    seen = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        stack.extend([current.__cause__, current.__context__])
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


def _connection_reason(exc: BaseException) -> str:
    for kind, reason in (
        (ConnectionResetError, "the connection was reset"),
        (ConnectionRefusedError, "the connection was refused"),
        (urllib3.exceptions.NameResolutionError, "the host name did not resolve"),
        (urllib3.exceptions.ProtocolError, "the connection broke off"),
    ):
        if _caused_by(exc, kind):
            return reason
    return "the connection failed"


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
