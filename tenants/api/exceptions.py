"""One JSON error shape for every REST error (SPEC §6).

    {"error": {"code": "validation_error", "message": "...", "details": {...}}}

`api_exception_handler` is DRF's EXCEPTION_HANDLER; the `api_*` views below are Django's
handler400/403/404/500 so that errors raised outside DRF (an unknown URL, a crash in
middleware) keep the same shape under /api/ (SWITCHYARD_API_PREFIX), while other paths
(the admin) keep Django's HTML pages.
"""

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def api_prefix() -> str:
    """Where errors answer in this shape (SWITCHYARD_API_PREFIX, default "/api/")."""
    return settings.SWITCHYARD_API_PREFIX


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, details: dict | None = None):
        super().__init__(detail, code)
        self.details = details or {}


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request depends on is unavailable; try again later."
    default_code = "service_unavailable"


# DRF's own codes are kept, except the generic "invalid" of ValidationError.
CODE_OVERRIDES = {exceptions.ValidationError: "validation_error"}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(code: str, message: str, status_code: int, details=None, **kwargs):
    """A plain Django JsonResponse in the error shape, for code outside DRF."""
    return JsonResponse(error_body(code, message, details), status=status_code, **kwargs)


def _translate(exc):
    """Django and database exceptions that are really client or dependency errors."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, ObjectDoesNotExist):
        # A row that vanished between the view's lookup and the service (a concurrent delete).
        return exceptions.NotFound()
    if isinstance(exc, IntegrityError):
        # A unique constraint lost to a concurrent request (e.g. two activations at once).
        logger.info("integrity error turned into 409: %s", type(exc).__name__)
        return Conflict()
    if isinstance(exc, OperationalError):
        logger.error("database unavailable: %s", exc)
        return ServiceUnavailable()
    return exc


def _code_and_message(exc: exceptions.APIException) -> tuple[str, str]:
    for cls, code in CODE_OVERRIDES.items():
        if isinstance(exc, cls):
            return code, "Invalid input." if not isinstance(exc.detail, str) else str(exc.detail)
    detail = exc.detail
    if isinstance(detail, exceptions.ErrorDetail):
        # A specific code given at raise time (e.g. Conflict(code="llm_unavailable")).
        return detail.code or exc.default_code, str(detail)
    if isinstance(detail, str):
        return exc.default_code, detail
    return exc.default_code, str(exc.default_detail)


def _details(exc: exceptions.APIException) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            return detail
        return {"non_field_errors": detail if isinstance(detail, list) else [detail]}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        return {"retry_after": int(exc.wait + 0.999)}
    if getattr(exc, "details", None):
        return exc.details
    if isinstance(exc.detail, dict):
        return exc.detail
    return {}


def api_exception_handler(exc, context):
    """DRF's handler (headers, rollback, Http404/PermissionDenied) with our body."""
    exc = _translate(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django logs it and handler500 answers in the shape
    code, message = _code_and_message(exc)
    response.data = error_body(code, message, _details(exc))
    return response


def _is_api(request) -> bool:
    return request.path.startswith(api_prefix())


def api_bad_request(request, exception, template_name="400.html"):
    if _is_api(request):
        code = "request_too_large" if isinstance(exception, RequestDataTooBig) else "bad_request"
        if code == "request_too_large":
            return error_response(code, "The request body is too large.", 413)
        return error_response(code, "Bad request.", 400)
    return defaults.bad_request(request, exception, template_name)


def api_permission_denied(request, exception, template_name="403.html"):
    if _is_api(request):
        return error_response("permission_denied", "Permission denied.", 403)
    return defaults.permission_denied(request, exception, template_name)


def api_page_not_found(request, exception, template_name="404.html"):
    if _is_api(request):
        return error_response("not_found", "Not found.", 404)
    return defaults.page_not_found(request, exception, template_name)


def api_server_error(request, template_name="500.html"):
    if _is_api(request):
        return error_response("server_error", "Internal server error.", 500)
    return defaults.server_error(request, template_name)
