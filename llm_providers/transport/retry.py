"""Retry policy: what is worth retrying, how long to wait, the default deadline (SPEC §5).

Plain functions of status, headers and attempt number, so that any transport shares them.
"""

import email.utils
import random
from collections.abc import Mapping
from datetime import UTC, datetime

from django.conf import settings

from ..errors import ErrorType, ProviderError

RETRY_AFTER_CAP = 60.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
RETRIED = frozenset({408, 409, 429, 498})


def default_deadline(read_timeout: float) -> float:
    return float(settings.LLM_REQUEST_DEADLINE or 2 * read_timeout)


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


def wait_before_retry(error: ProviderError, attempt: int) -> float | None:
    if error.retry_after is not None:
        if error.retry_after > RETRY_AFTER_CAP:
            return None  # the server asks for longer than we wait: report it instead
        return error.retry_after
    return backoff_seconds(attempt)
