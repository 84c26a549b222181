"""OpenAPI pieces shared by every REST view: the Bearer scheme and the error shape."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class TenantAPIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.TenantAPIKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant API key: `Authorization: Bearer <key>`. The tenant is "
            "always the key's.",
        }


class TenantResolverScheme(OpenApiAuthenticationExtension):
    """The host project's SWITCHYARD_TENANT_RESOLVER: the host's own authentication, which
    Switchyard cannot describe; it adds nothing to the schema."""

    target_class = "tenants.authentication.TenantResolverAuthentication"
    name = []

    def get_security_requirement(self, auto_schema):
        return None

    def get_security_definition(self, auto_schema):
        return []


ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={
                "code": serializers.CharField(
                    help_text="Machine-readable: validation_error, parse_error, "
                    "not_authenticated, authentication_failed, not_found, method_not_allowed, "
                    "conflict, request_too_large, unsupported_media_type, throttled, "
                    "service_unavailable, server_error."
                ),
                "message": serializers.CharField(help_text="Human-readable summary."),
                "details": serializers.DictField(
                    help_text="Per-field messages for validation errors; otherwise extra "
                    "context (e.g. retry_after) or empty."
                ),
            },
        )
    },
)

ERROR_DESCRIPTIONS = {
    400: "Invalid input (validation_error, parse_error).",
    401: "Missing or invalid API key (not_authenticated, authentication_failed).",
    404: "Not found, or belongs to another tenant (not_found).",
    405: "Method not allowed (method_not_allowed).",
    409: "Conflict with the current state (conflict).",
    413: "Request body too large (request_too_large).",
    415: "Body is not JSON (unsupported_media_type).",
    429: "Throttled (throttled); see the Retry-After header.",
    503: "A dependency such as the database is down (service_unavailable).",
}


def error_responses(*statuses: int) -> dict:
    """`responses=` entries in the error shape; 401 and 503 are added to every operation."""
    wanted = sorted({401, 503, *statuses})
    return {s: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[s]) for s in wanted}
