"""Who is acting, and for which request: the request id and the audit actor (SPEC §15).

One context variable holds a small mutable `ActionContext` for the current request (set by
`config.middleware.RequestIdMiddleware`), management command (`acting_as`) or nothing
(background work: actor `system`). Mutable on purpose: DRF authenticates inside the view,
and the key's prefix it learns must reach the audit rows written later in that view.

It lives in `tenants`, the lowest layer, so that every app (and the logging filter, which
LOGGING loads before the apps) can read it; it imports nothing from Django.
"""

import contextlib
import logging
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

SYSTEM_ACTOR = "system"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_LENGTH}}}")


@dataclass
class ActionContext:
    request_id: str | None = None
    actor: str | None = None
    ip: str | None = None
    # The Django request, for the admin's user (read lazily: only an audit write needs it).
    request: object | None = field(default=None, repr=False)

    def resolved_actor(self) -> str:
        if self.actor:
            return self.actor
        user = getattr(self.request, "user", None)
        # Only a Django user is an admin: an API request's user is the tenant principal.
        if getattr(user, "is_authenticated", False) and hasattr(user, "get_username"):
            return f"admin:{user.get_username()}"
        return SYSTEM_ACTOR


_current: ContextVar[ActionContext | None] = ContextVar("switchyard_action", default=None)


def current() -> ActionContext | None:
    return _current.get()


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx is not None else None


def current_actor() -> str:
    ctx = _current.get()
    return ctx.resolved_actor() if ctx is not None else SYSTEM_ACTOR


def set_actor(actor: str) -> None:
    """Name the actor of the current request (REST authentication: `api_key:<prefix>`)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.actor = actor


def bind(ctx: ActionContext | None):
    """Make `ctx` the current context until `unbind(token)` (a hot loop's `bound`)."""
    return _current.set(ctx)


def unbind(token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def bound(ctx: ActionContext):
    """Make `ctx` the current context for the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextlib.contextmanager
def acting_as(actor: str, *, ip: str | None = None):
    """Run a block as `actor` (management commands: `command:<name>`)."""
    outer = _current.get()
    ctx = ActionContext(request_id=outer.request_id if outer else None, actor=actor, ip=ip)
    with bound(ctx):
        yield ctx


def command_actor(module_name: str) -> str:
    """`command:<name>` for a management command module (`…commands.create_tenant`)."""
    return f"command:{module_name.rsplit('.', 1)[-1]}"


def sane_request_id(value: str | None) -> str | None:
    """The client's X-Request-ID when it is a sane token (≤ 128 of [A-Za-z0-9._-]), else None."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdLogFilter(logging.Filter):
    """Puts the current request id (or "-") on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs 4xx/5xx answers after the middlewares returned, but
            # passes the request along: its id is on it.
            request = getattr(record, "request", None)
            record.request_id = current_request_id() or getattr(request, "request_id", None) or "-"
        return True
