"""One call's attempts, transport aside: the policy both transports run (SPEC §5).

`send.py` (requests, sync) and `asend.py` (aiohttp, async) only move bytes; everything
they decide — how long an attempt may take, whether to retry and after how long, when
the deadline has passed, what a body may weigh, which headers go out — is decided here,
once:

- `Attempts`: the attempt loop's bookkeeping (the deadline, each attempt's timeouts,
  the retry decision with Retry-After / backoff, the log line, the upstream time).
- `BodyCollector`: a reply body read chunk by chunk, bounded in size and by the deadline.
- `request_headers` / `request_body`: what goes on the wire, validated the same way.
"""

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from requests.utils import check_header_validity

from ..errors import ErrorType, ProviderError
from ..providers.base import HttpRequestSpec
from .errors import deadline_error, safe_url
from .retry import default_deadline, wait_before_retry

logger = logging.getLogger("llm_providers.transport.send")

CONNECT_TIMEOUT = 5.0
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024


@dataclass
class HttpResult:
    """The outcome of a call: a 2xx body (or open stream), or a normalised error."""

    status_code: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes | None = None
    # Open, for streams: the caller closes it (a requests.Response, or an aiohttp
    # ClientResponse on the async path).
    response: Any = None
    error: ProviderError | None = None
    attempts: int = 0
    upstream_seconds: float = 0.0  # time on the wire, waits between attempts excluded
    # monotonic() time by which the whole call must be over (streams: see stream_end)
    end: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BodyProblem(Exception):
    """Reading a reply body failed: the error to report and whether to retry."""

    def __init__(self, error: ProviderError, retryable: bool):
        self.error, self.retryable = error, retryable


class Attempts:
    """The attempt loop of one call. A transport runs:

    attempts = Attempts(spec, ...)
    while (remaining := attempts.begin()) is not None:
        ... one attempt, bounded by `remaining` (connect / read: attempts.timeouts) ...
        attempts.succeeded() / attempts.failed(error, retryable) ...
        wait = attempts.retry_wait()
        if wait is None: break
        sleep(wait)
    return attempts.result
    """

    def __init__(
        self,
        spec: HttpRequestSpec,
        *,
        max_retries: int | None,
        read_timeout: float | None,
        deadline: float | None,
    ):
        if max_retries is None:
            max_retries = settings.LLM_MAX_RETRIES
        if read_timeout is None:
            read_timeout = settings.LLM_REQUEST_TIMEOUT
        if deadline is None:
            deadline = default_deadline(read_timeout)
        self.spec = spec
        self.max_retries = max_retries
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.headers = request_headers(spec)
        self.started = time.monotonic()
        self.end = self.started + deadline
        self.result = HttpResult(end=self.end)
        self._t0 = 0.0
        self._retryable = False

    def begin(self) -> float | None:
        """The time left for the next attempt, or None: the deadline has passed."""
        self.result.attempts += 1
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            self.result.error = deadline_error(self.deadline)
            return None
        self._retryable = False
        self._t0 = time.monotonic()
        return remaining

    def timeouts(self, remaining: float) -> tuple[float, float]:
        """(connect, read) timeouts of an attempt with `remaining` seconds left."""
        return min(CONNECT_TIMEOUT, remaining), min(self.read_timeout, remaining)

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        self.result.status_code = status
        self.result.headers = headers

    def succeeded(self, *, body: bytes | None = None, response=None) -> HttpResult:
        self.result.body = body
        self.result.response = response
        self.result.error = None
        self._stop_clock()
        return self.result

    def failed(self, error: ProviderError, retryable: bool) -> None:
        if error.type == ErrorType.BAD_RESPONSE and error.status_code is None:
            error.status_code = self.result.status_code
        self.result.error = error
        self._retryable = retryable
        self._stop_clock()

    def _stop_clock(self) -> None:
        if self._t0:
            self.result.upstream_seconds += time.monotonic() - self._t0
            self._t0 = 0.0

    def retry_wait(self) -> float | None:
        """How long to wait before the next attempt; None: report the last error."""
        result = self.result
        if not self._retryable or result.attempts > self.max_retries:
            return None
        wait = wait_before_retry(result.error, result.attempts)
        if wait is None or time.monotonic() + wait >= self.end:
            return None
        logger.info(
            "retrying %s %s in %.2fs after %s (attempt %d of %d)",
            self.spec.method,
            safe_url(self.spec.url),
            wait,
            result.error.type,
            result.attempts + 1,
            self.max_retries + 1,
        )
        return wait


def request_headers(spec: HttpRequestSpec) -> dict[str, str]:
    headers = spec.headers
    if spec.method != "GET":
        # One key for every attempt, so a provider can drop a duplicate (as the SDKs do).
        headers = {**headers, "Idempotency-Key": f"switchyard-{uuid.uuid4().hex}"}
    return headers


def request_body(spec: HttpRequestSpec) -> bytes | None:
    """The JSON body as both transports send it; ValueError for NaN / infinity."""
    if spec.json is None:
        return None
    return json.dumps(spec.json, allow_nan=False).encode("utf-8")


def check_headers(headers: Mapping[str, str]) -> None:
    """requests' header validation (raises InvalidHeader), applied on the async path too."""
    for header in headers.items():
        check_header_validity(header)


def body_too_large(limit: int) -> BodyProblem:
    return BodyProblem(
        ProviderError(ErrorType.BAD_RESPONSE, f"The reply is larger than {limit} bytes."), False
    )


class BodyCollector:
    """A reply body gathered chunk by chunk: at most `limit` bytes, within the deadline.

    `add` returns False once a truncated (error) body has enough; it raises BodyProblem
    for a 2xx body past the limit or a read that ends after the deadline.
    """

    def __init__(self, limit: int, end: float, *, truncate: bool = False):
        self.limit, self.end, self.truncate = limit, end, truncate
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> bool:
        self.chunks.append(chunk)
        self.size += len(chunk)
        if self.size > self.limit:
            if self.truncate:
                return False
            raise body_too_large(self.limit)
        if time.monotonic() > self.end:
            raise BodyProblem(deadline_error(None), False)
        return True

    def body(self) -> bytes:
        return b"".join(self.chunks)


def broken_encoding() -> BodyProblem:
    return BodyProblem(
        ProviderError(ErrorType.BAD_RESPONSE, "The reply's content encoding is broken."), False
    )


def stream_end(result: HttpResult) -> float | None:
    """When an open stream must be over: LLM_STREAM_MAX_SECONDS from now when set, else
    the call's own deadline (SPEC §5; issue 15.8)."""
    limit = float(getattr(settings, "LLM_STREAM_MAX_SECONDS", 0) or 0)
    if limit > 0:
        return time.monotonic() + limit
    return result.end
