"""Pooled HTTP sessions, one per process and (scheme, host, port), shared by all threads.

Each session's urllib3 pool is thread-safe and keeps connections alive; cookies are never
stored (tenants share sessions) and nothing is read from the environment per request
(proxies are resolved once per host). Tenant-supplied base URLs go through a session whose
connections resolve the host and check every address with `urlsafety.check_address`
before connecting, then connect to a checked address (no packet reaches a refused one).
"""

import os
import socket
import threading
from http.cookiejar import CookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

from ..configs.urlsafety import UnsafeBaseURL, check_address

POOL_MAXSIZE = 32


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
    """The host resolves to an address the base-URL policy refuses; nothing was sent."""


# The mixin goes before a urllib3 connection class; the type checker needs to know which.
if TYPE_CHECKING:
    _ConnectionBase = urllib3.connection.HTTPConnection
else:
    _ConnectionBase = object


class _CheckedConnectionMixin(_ConnectionBase):
    """Resolve, check every address, then connect to a checked one (issue 15.14).

    Checking the peer after connecting would leak whether a refused address has an open
    port (a refusal there, "connection refused" elsewhere) and sends a SYN to it. Here
    the host is resolved first, every address it resolves to is checked (one refused
    address refuses the host: a name that mixes public and private addresses is a
    rebinding attempt), and only then is a checked address connected to. Host and SNI
    stay the URL's host name (`self.host`); only the socket goes to the address.
    """

    def _new_conn(self):
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise urllib3.exceptions.NameResolutionError(self.host, self, e) from e
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            try:
                check_address(address)
            except UnsafeBaseURL as exc:
                raise RefusedAddress(str(exc)) from None
        last: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as e:
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from e
            except OSError as e:
                last = e
                continue
            return sock
        raise urllib3.exceptions.NewConnectionError(
            self, f"Failed to establish a new connection: {last}"
        ) from last


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
        self._pools: dict[str, ConnectionPool] = {}
        super().__init__(*args, **kwargs)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        if proxies or cert is not None or verify is not True:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        pool = self._pools.get(request.url)
        if pool is None or getattr(pool, "pool", None) is None:  # closed: no queue any more
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._pools) >= 64:
                self._pools.clear()
            self._pools[request.url] = pool
        return pool

    def build_response(self, req, resp):
        response = requests.Response()
        response.status_code = resp.status
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
    """An HTTPAdapter whose connections check the resolved addresses before connecting."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": CheckedHTTPConnectionPool,
            "https": CheckedHTTPSConnectionPool,
        }


# What both paths (this one and asessions.py) tell every provider they are.
USER_AGENT = "switchyard"

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
    session.headers["User-Agent"] = USER_AGENT
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
