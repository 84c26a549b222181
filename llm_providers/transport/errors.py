"""Transport trouble (a status, an exception, a deadline) as a normalised ProviderError."""

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
import requests
import urllib3

from ..configs.urlsafety import UnsafeBaseURL
from ..errors import ErrorType, ProviderError
from .retry import is_retryable, retry_after_seconds

ErrorMapper = Callable[[int, bytes | None, Mapping[str, str]], ProviderError]


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, map_error: ErrorMapper
) -> tuple[ProviderError, bool]:
    if 300 <= status < 400:
        return (
            ProviderError(
                ErrorType.CONFIGURATION,
                f"The provider answered with a redirect (HTTP {status}); check the base URL.",
                status_code=status,
            ),
            False,
        )
    error = map_error(status, body, headers)
    error.status_code = status
    error.retry_after = retry_after_seconds(headers)
    return error, is_retryable(status, error, headers)


def deadline_error(deadline: float | None) -> ProviderError:
    after = f" of {deadline:g}s" if deadline else ""
    return ProviderError(ErrorType.TIMEOUT, f"The call exceeded its deadline{after}.")


def transport_error(exc: BaseException, url: str) -> tuple[ProviderError, bool]:
    host = urlsplit(url).hostname or "the provider"
    refused = _refusal(exc)
    if refused is not None:
        return ProviderError(ErrorType.CONFIGURATION, f"Refused base URL address: {refused}"), False
    if isinstance(exc, requests.exceptions.Timeout | aiohttp.ServerTimeoutError) or _caused_by(
        exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)
    ):
        return ProviderError(ErrorType.TIMEOUT, f"{host} did not answer in time."), True
    if isinstance(exc, requests.exceptions.SSLError | aiohttp.ClientSSLError):
        return ProviderError(ErrorType.CONNECTION, f"TLS with {host} failed."), False
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return ProviderError(
            ErrorType.CONFIGURATION, "A request header is not valid (check the key)."
        ), False
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        return ProviderError(
            ErrorType.INVALID_REQUEST, "The request body is not valid JSON (NaN?)."
        ), False
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | aiohttp.InvalidURL,
    ):
        return ProviderError(ErrorType.CONFIGURATION, "The provider URL is not valid."), False
    return ProviderError(ErrorType.CONNECTION, f"{host}: {_connection_reason(exc)}."), True


def _refusal(exc: BaseException) -> UnsafeBaseURL | None:
    """The base-URL refusal behind `exc` (aiohttp wraps its resolver's errors)."""
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UnsafeBaseURL):
            return current
        current = current.__cause__ or current.__context__
    return None


def _caused_by(exc: BaseException, kinds) -> bool:
    seen = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        stack.extend([current.__cause__, current.__context__])
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


def _connection_reason(exc: BaseException) -> str:
    for kind, reason in (
        (ConnectionResetError, "the connection was reset"),
        (ConnectionRefusedError, "the connection was refused"),
        (
            urllib3.exceptions.NameResolutionError | aiohttp.ClientConnectorDNSError,
            "the host name did not resolve",
        ),
        (
            urllib3.exceptions.ProtocolError
            | aiohttp.ServerDisconnectedError
            | aiohttp.ClientPayloadError,
            "the connection broke off",
        ),
    ):
        if _caused_by(exc, kind):
            return reason
    return "the connection failed"


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
