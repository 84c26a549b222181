"""Normalised provider errors (SPEC §6): values at the provider boundary, never exceptions."""

from dataclasses import dataclass
from enum import StrEnum

from .redaction import redact

MAX_MESSAGE_LENGTH = 500


class ErrorType(StrEnum):
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    RATE_LIMIT = "rate_limit"
    QUOTA_EXCEEDED = "quota_exceeded"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    BAD_RESPONSE = "bad_response"
    CONFIGURATION = "configuration"
    # Switchyard's own limits (SPEC §14), decided before any provider call; status 429.
    RATE_LIMITED = "rate_limited"  # a request, token or concurrency limit
    BUDGET_EXCEEDED = "budget_exceeded"  # a spending limit


# Refusals by Switchyard itself: never retried, never a reason to fall back.
OWN_LIMIT_ERRORS = frozenset({ErrorType.RATE_LIMITED, ErrorType.BUDGET_EXCEEDED})


# The usual meaning of an HTTP status when the body says nothing more specific.
STATUS_ERROR_TYPES = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.AUTHENTICATION,
    402: ErrorType.QUOTA_EXCEEDED,
    403: ErrorType.PERMISSION,
    404: ErrorType.NOT_FOUND,
    408: ErrorType.TIMEOUT,
    409: ErrorType.SERVER_ERROR,  # a conflict upstream; transient, retried
    413: ErrorType.INVALID_REQUEST,
    422: ErrorType.INVALID_REQUEST,
    429: ErrorType.RATE_LIMIT,
    498: ErrorType.OVERLOADED,  # Groq: flex capacity exceeded
    503: ErrorType.OVERLOADED,
    504: ErrorType.TIMEOUT,
    529: ErrorType.OVERLOADED,
}


def error_type_for_status(status: int) -> ErrorType:
    if status in STATUS_ERROR_TYPES:
        return STATUS_ERROR_TYPES[status]
    if status >= 500:
        return ErrorType.SERVER_ERROR
    return ErrorType.INVALID_REQUEST


@dataclass
class ProviderError:
    """What went wrong, normalised; `message` is redacted and never holds a key."""

    type: str
    message: str
    status_code: int | None = None
    retry_after: float | None = None
    # The request field at fault, when the error is about one (an unsupported field).
    param: str | None = None

    def __post_init__(self):
        self.type = str(ErrorType(self.type))
        message = redact(str(self.message or ""))
        if len(message) > MAX_MESSAGE_LENGTH:
            message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
        self.message = message

    def as_dict(self) -> dict:
        return {"type": self.type, "message": self.message, "status_code": self.status_code}

    def __str__(self):
        status = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{self.type}{status}: {self.message}"
