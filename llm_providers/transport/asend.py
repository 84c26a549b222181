"""The async transport: `send`'s twin over aiohttp, the same policy (SPEC §5, issue 9).

Every decision — timeouts, the deadline, what is retried and after how long, body caps,
the error a failure becomes, which headers and body go out — is attempts.py's, retry.py's
and errors.py's, exactly as for `send.send`; this module only moves bytes. Why aiohttp
rather than httpx: bench/README.md ("Async HTTP client").

The call's deadline bounds every await (`asyncio.timeout`), connect, headers and each
body read alike, so a body trickled in a byte at a time cannot outlive it. Cancelling the
task (a client that left) closes the connection at once: the provider sees the call end.

`asleep` is looked up at call time so tests can patch `llm_providers.transport.asend.asleep`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import requests

from .. import observability
from ..configs.urlsafety import UnsafeBaseURL
from ..errors import ErrorType, ProviderError
from ..providers.base import HttpRequestSpec
from .asessions import get_async_session
from .attempts import (
    MAX_BODY_BYTES,
    MAX_ERROR_BODY_BYTES,
    Attempts,
    BodyCollector,
    BodyProblem,
    HttpResult,
    broken_encoding,
    check_headers,
    request_body,
)
from .errors import ErrorMapper, deadline_error, status_error, transport_error

asleep = asyncio.sleep


async def asend(
    spec: HttpRequestSpec,
    *,
    map_error: ErrorMapper,
    check: bool = False,
    max_retries: int | None = None,
    read_timeout: float | None = None,
    deadline: float | None = None,
    sleep_fn: Callable[[float], Awaitable[None]] | None = None,
) -> HttpResult:
    """Send `spec`, retrying what is worth retrying; never raises for network trouble.

    A 2xx stream comes back open (`result.response`, an aiohttp ClientResponse): the
    caller reads and releases it."""
    attempts = Attempts(spec, max_retries=max_retries, read_timeout=read_timeout, deadline=deadline)
    wait_fn = sleep_fn or asleep
    try:
        check_headers(attempts.headers)
        body = request_body(spec)
    except requests.exceptions.InvalidHeader as exc:
        attempts.begin()
        attempts.failed(*transport_error(exc, spec.url))
        return attempts.result
    except ValueError as exc:
        attempts.begin()
        attempts.failed(*transport_error(requests.exceptions.InvalidJSONError(exc), spec.url))
        return attempts.result
    headers = dict(attempts.headers)
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    session = get_async_session(spec.url, check=check)
    loop = asyncio.get_running_loop()
    while (remaining := attempts.begin()) is not None:
        response = None
        connect, read = attempts.timeouts(remaining)
        attempt = observability.attempt_started(spec, attempts.result.attempts, attempts.result)
        try:
            async with asyncio.timeout_at(loop.time() + remaining):
                response = await session.request(
                    spec.method,
                    spec.url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(connect=connect, sock_read=read),
                )
                attempts.answered(response.status, response.headers)
                if 200 <= response.status < 300:
                    if spec.stream:
                        return attempts.succeeded(response=response)
                    payload = await _read_body(response, attempts.end, MAX_BODY_BYTES)
                    return attempts.succeeded(body=payload)
                payload = await _read_body(
                    response, attempts.end, MAX_ERROR_BODY_BYTES, truncate=True
                )
                attempts.failed(
                    *status_error(response.status, response.headers, payload, map_error)
                )
        except BodyProblem as problem:
            _close(response)
            attempts.failed(problem.error, problem.retryable)
        except TimeoutError as exc:
            _close(response)
            if attempts.expired():  # the call's deadline (asyncio.timeout), not a read timeout
                attempts.failed(deadline_error(attempts.deadline), False)
            else:
                attempts.failed(*transport_error(exc, spec.url))
        except (aiohttp.ClientError, UnsafeBaseURL, OSError) as exc:
            _close(response)
            attempts.failed(*transport_error(exc, spec.url))
        except ValueError:
            _close(response)
            attempts.failed(
                ProviderError(
                    ErrorType.CONFIGURATION, "The request could not be built (check the key)."
                ),
                False,
            )
        except BaseException:  # cancelled (the client left): the connection goes too
            _close(response)
            raise
        finally:
            observability.attempt_finished(attempt, attempts.result)  # [issue 12: traces]
        wait = attempts.retry_wait()
        if wait is None:
            break
        await wait_fn(wait)
    return attempts.result


async def _read_body(response, end: float, limit: int, *, truncate: bool = False) -> bytes:
    collector = BodyCollector(limit, end, truncate=truncate)
    try:
        async for chunk in response.content.iter_any():
            if not collector.add(chunk):
                break
    except aiohttp.ClientPayloadError as exc:
        if "encoding" in str(exc).lower() or "decompress" in str(exc).lower():
            raise broken_encoding() from None
        raise BodyProblem(*transport_error(exc, str(response.url))) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise BodyProblem(*transport_error(exc, str(response.url))) from None
    finally:
        if truncate:
            response.close()
        else:
            response.release()
    return collector.body()


def _close(response) -> None:
    if response is not None:
        response.close()


def monotonic_to_loop(end: float) -> float:
    """A time.monotonic() instant on the running loop's clock (asyncio.timeout_at)."""
    return asyncio.get_running_loop().time() + (end - time.monotonic())
