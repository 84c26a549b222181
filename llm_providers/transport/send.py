"""Sending one provider request: timeouts, a deadline, retries (SPEC §5).

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
- Tenant-supplied base URLs go through a session whose connections resolve the host,
  check every address with `urlsafety.check_address` and only then connect, to a checked
  address; a refused address is a `configuration` error and no packet reaches it.
- The policy (attempts.py, retry.py, errors.py) is shared with the async transport
  (asend.py); this module only moves bytes with requests.

`sleep` is looked up at call time so tests can patch `llm_providers.transport.send.sleep`.
"""

import time
from collections.abc import Callable

import requests

from .. import observability
from ..configs.urlsafety import UnsafeBaseURL
from ..errors import ErrorType, ProviderError
from ..providers.base import HttpRequestSpec
from . import watchdog
from .attempts import (
    CONNECT_TIMEOUT,  # noqa: F401  (re-exported: the documented place of the constants)
    MAX_BODY_BYTES,
    MAX_ERROR_BODY_BYTES,
    Attempts,
    BodyCollector,
    BodyProblem,
    HttpResult,
    broken_encoding,
)
from .errors import ErrorMapper, deadline_error, status_error, transport_error
from .prepare import prepare, send_prepared
from .sessions import get_session

__all__ = ["HttpResult", "send"]

sleep = time.sleep


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
    attempts = Attempts(spec, max_retries=max_retries, read_timeout=read_timeout, deadline=deadline)
    wait_fn = sleep_fn or sleep
    session = get_session(spec.url, check=check)
    while (remaining := attempts.begin()) is not None:
        response = None
        attempt = observability.attempt_started(spec, attempts.result.attempts, attempts.result)
        try:
            # The adapter directly, not `Session.send`: see `send_prepared`.
            response = send_prepared(
                session, prepare(session, spec, attempts.headers), attempts.timeouts(remaining)
            )
            attempts.answered(response.status_code, response.headers)
            if 200 <= response.status_code < 300:
                if spec.stream:
                    return attempts.succeeded(response=response)
                body = _read_body(response, attempts.end, MAX_BODY_BYTES)
                return attempts.succeeded(body=body)
            body = _read_body(response, attempts.end, MAX_ERROR_BODY_BYTES, truncate=True)
            attempts.failed(*status_error(response.status_code, response.headers, body, map_error))
        except BodyProblem as problem:
            _close(response)
            attempts.failed(problem.error, problem.retryable)
        except (requests.RequestException, UnsafeBaseURL, OSError) as exc:
            _close(response)
            attempts.failed(*transport_error(exc, spec.url))
        except ValueError:
            # e.g. a key with characters no HTTP header can carry; the text may hold it.
            _close(response)
            attempts.failed(
                ProviderError(
                    ErrorType.CONFIGURATION, "The request could not be built (check the key)."
                ),
                False,
            )
        finally:
            observability.attempt_finished(attempt, attempts.result)  # [issue 12: traces]
        wait = attempts.retry_wait()
        if wait is None:
            break
        wait_fn(wait)
    return attempts.result


def _read_body(response, end: float, limit: int, *, truncate: bool = False) -> bytes:
    """The body, read within the deadline: the watchdog cuts a read that outlives it."""
    collector = BodyCollector(limit, end, truncate=truncate)
    guard = watchdog.guard_response(response, end)
    try:
        for chunk in response.iter_content(65536):
            if not collector.add(chunk):
                break
    except requests.exceptions.ContentDecodingError:
        raise broken_encoding() from None
    except (requests.RequestException, OSError) as exc:
        if guard is not None and guard.fired:
            raise BodyProblem(deadline_error(None), False) from None
        raise BodyProblem(*transport_error(exc, response.url)) from None
    finally:
        watchdog.watchdog.cancel(guard)
        if truncate:
            response.close()
    if guard is not None and guard.fired:
        raise BodyProblem(deadline_error(None), False)
    return collector.body()


def _close(response) -> None:
    if response is not None:
        response.close()
