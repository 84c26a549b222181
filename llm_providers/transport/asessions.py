"""Pooled aiohttp sessions for the async transport: one per event loop and origin.

An aiohttp `ClientSession` belongs to the loop it was made on, so sessions are kept per
running loop (a web process has one; `async_to_sync` makes short-lived ones, whose
sessions go with them) and per (scheme, host, port, checked). Each keeps its connections
alive (no per-host limit: a thousand calls to one provider are a thousand sockets), never
stores cookies (tenants share sessions), never follows redirects (asend passes
`allow_redirects=False`), and reads proxies from the environment only for operator
configured hosts, as the sync sessions do.

Checked sessions (tenant-supplied base URLs) use `CheckedConnector`: every address the
host resolves to — an IP literal included — is checked with `urlsafety.check_address`
before aiohttp connects, and aiohttp then connects to those checked addresses while Host
and SNI stay the URL's host name. No DNS cache there: each new connection resolves and
checks afresh (a name can resolve differently later).
"""

import asyncio
import os
import weakref

import aiohttp

from ..configs.urlsafety import UnsafeBaseURL, check_address
from .sessions import USER_AGENT, RefusedAddress, _origin

KEEPALIVE_SECONDS = 30.0


class CheckedConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses a host unless every address it resolves to is allowed."""

    async def _resolve_host(self, host, port, traces=None):
        results = await super()._resolve_host(host, port, traces=traces)
        for result in results:
            try:
                check_address(result["host"])
            except UnsafeBaseURL as exc:
                raise RefusedAddress(str(exc)) from None
        return results


# loop → {(scheme, host, port, check): session}; a closed loop's entry goes with the loop.
_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = (
    weakref.WeakKeyDictionary()
)


def get_async_session(url: str, *, check: bool = False) -> aiohttp.ClientSession:
    """The running loop's pooled session for `url`'s origin (checked or not)."""
    loop = asyncio.get_running_loop()
    per_loop = _sessions.get(loop)
    if per_loop is None:
        per_loop = _sessions[loop] = {}
    key = (*_origin(url), check)
    session = per_loop.get(key)
    if session is None or session.closed:
        session = per_loop[key] = _new_session(check=check)
    return session


def _new_session(*, check: bool) -> aiohttp.ClientSession:
    connector_class = CheckedConnector if check else aiohttp.TCPConnector
    connector = connector_class(
        limit=0,  # no pool ceiling: waiting on a provider costs a socket, nothing more
        keepalive_timeout=KEEPALIVE_SECONDS,
        use_dns_cache=not check,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=not check,  # tenant-supplied hosts never go through a proxy
        auto_decompress=True,
        # Timeouts are per request (asend), under the call's own deadline.
        timeout=aiohttp.ClientTimeout(total=None),
        # A session header is a request's own, so aiohttp adds no User-Agent of its own
        # (`skip_auto_headers` would build a header dict per request for nothing).
        headers={"User-Agent": USER_AGENT},
    )


async def aclose_sessions() -> None:
    """Close the running loop's sessions (tests; a loop about to end)."""
    per_loop = _sessions.pop(asyncio.get_running_loop(), None) or {}
    for session in per_loop.values():
        await session.close()


def _forget_after_fork() -> None:
    _sessions.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
