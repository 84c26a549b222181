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
- Tenant-supplied base URLs go through a session whose connections check the address
  actually connected to with `urlsafety.check_address` before a byte is sent; a refused
  address is a `configuration` error.

`sleep` is looked up at call time so tests can patch `llm_providers.transport.send.sleep`.
"""

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests
from django.conf import settings

from .. import observability
from ..configs.urlsafety import UnsafeBaseURL
from ..errors import ErrorType, ProviderError
from ..providers.base import HttpRequestSpec
from .errors import ErrorMapper, deadline_error, safe_url, status_error, transport_error
from .prepare import prepare, send_prepared
from .retry import default_deadline, wait_before_retry
from .sessions import get_session

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024

sleep = time.sleep


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
            result.error = deadline_error(deadline)
            return result
        retryable = False
        t0 = time.monotonic()
        response = None
        attempt = observability.attempt_started(spec, result.attempts, result)  # [issue 12]
        try:
            # The adapter directly, not `Session.send`: see `send_prepared`.
            response = send_prepared(
                session,
                prepare(session, spec, headers),
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
            result.error, retryable = status_error(response, body, map_error)
        except _BodyProblem as problem:
            _close(response)
            result.error, retryable = problem.error, problem.retryable
            if result.error.type == ErrorType.BAD_RESPONSE:
                result.error.status_code = result.status_code
        except (requests.RequestException, UnsafeBaseURL, OSError) as exc:
            _close(response)
            result.error, retryable = transport_error(exc, spec.url)
        except ValueError:
            # e.g. a key with characters no HTTP header can carry; the text may hold it.
            _close(response)
            result.error = ProviderError(
                ErrorType.CONFIGURATION, "The request could not be built (check the key)."
            )
            retryable = False
        finally:
            result.upstream_seconds += time.monotonic() - t0
            observability.attempt_finished(attempt, result)  # [issue 12: traces]

        if not retryable or result.attempts > max_retries:
            return result
        wait = wait_before_retry(result.error, result.attempts)
        if wait is None or time.monotonic() + wait >= end:
            return result
        logger.info(
            "retrying %s %s in %.2fs after %s (attempt %d of %d)",
            spec.method,
            safe_url(spec.url),
            wait,
            result.error.type,
            result.attempts + 1,
            max_retries + 1,
        )
        wait_fn(wait)


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
                raise _BodyProblem(deadline_error(None), False)
    except requests.exceptions.ContentDecodingError:
        raise _BodyProblem(
            ProviderError(ErrorType.BAD_RESPONSE, "The reply's content encoding is broken."), False
        ) from None
    except (requests.RequestException, OSError) as exc:
        raise _BodyProblem(*transport_error(exc, response.url)) from None
    finally:
        if truncate:
            response.close()
    return b"".join(chunks)


def _close(response) -> None:
    if response is not None:
        response.close()
