"""OpenAI-shaped errors for /v1: `{"error": {"message", "type", "param", "code"}}`.

The client's own mistakes are 4xx with OpenAI's types. Provider trouble is never passed
off as the client's: a provider's 401 (the tenant's stored key is wrong) is a 502
`upstream_authentication`, not a 401 that would make the client doubt its own key.
"""

import json
import math

from django.http import HttpResponse

from ..errors import OWN_LIMIT_ERRORS, ErrorType, ProviderError

# ProviderError.type → (HTTP status, OpenAI-style error type, code)
PROVIDER_ERRORS = {
    ErrorType.CONFIGURATION: (503, "provider_unavailable", "provider_not_configured"),
    ErrorType.AUTHENTICATION: (502, "upstream_authentication", "upstream_authentication"),
    ErrorType.PERMISSION: (502, "upstream_permission", "upstream_permission"),
    ErrorType.NOT_FOUND: (404, "not_found_error", "upstream_not_found"),
    ErrorType.INVALID_REQUEST: (400, "invalid_request_error", "upstream_invalid_request"),
    ErrorType.RATE_LIMIT: (429, "rate_limit_error", "upstream_rate_limited"),
    ErrorType.QUOTA_EXCEEDED: (429, "insufficient_quota", "upstream_quota_exceeded"),
    ErrorType.TIMEOUT: (504, "upstream_timeout", "upstream_timeout"),
    ErrorType.CONNECTION: (502, "upstream_connection_error", "upstream_connection_error"),
    ErrorType.SERVER_ERROR: (502, "upstream_server_error", "upstream_server_error"),
    ErrorType.OVERLOADED: (503, "upstream_overloaded", "upstream_overloaded"),
    ErrorType.BAD_RESPONSE: (502, "upstream_bad_response", "upstream_bad_response"),
    # Switchyard's own limits (SPEC §14): the provider was not called.
    ErrorType.RATE_LIMITED: (429, "rate_limit_error", "rate_limited"),
    ErrorType.BUDGET_EXCEEDED: (429, "insufficient_quota", "budget_exceeded"),
}
# When the provider rate-limits without saying for how long.
DEFAULT_RETRY_AFTER = 1


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    status: int, message: str, type_: str, code: str | None = None, param: str | None = None
) -> HttpResponse:
    return HttpResponse(
        json.dumps(error_body(message, type_, code, param)),
        status=status,
        content_type="application/json",
    )


def provider_error_status(error: ProviderError) -> tuple[int, str, str]:
    return PROVIDER_ERRORS.get(error.type, (502, "upstream_error", "upstream_error"))


def provider_error_response(error: ProviderError) -> HttpResponse:
    """The /v1 answer for a call that failed at (or before reaching) the provider."""
    status, type_, code = provider_error_status(error)
    if error.param is not None:  # refused before sending: a field the provider lacks
        code = "unsupported_parameter"
    response = error_response(status, error.message, type_, code, error.param)
    if error.type in OWN_LIMIT_ERRORS:
        # When the window really frees up; none when waiting cannot help (a call larger
        # than the whole limit, an unknown price).
        if error.retry_after is not None:
            response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif (status == 429 and type_ == "rate_limit_error") or error.type == ErrorType.OVERLOADED:
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def stream_error_event(error: ProviderError) -> bytes:
    """An error after the stream started: OpenAI sends it as a data event; the SDKs raise."""
    status, type_, code = provider_error_status(error)
    return b"data: " + json.dumps(error_body(error.message, type_, code)).encode() + b"\n\n"
