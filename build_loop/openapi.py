"""Fallback OpenAPI description of the tenant Bearer key, for the build endpoints' schema.

The project-wide scheme belongs to the REST API (issue 4, config/schema.py). Until that is
merged, the schema (and `check --deploy`) would warn about an undescribed authenticator.
priority=-1: the project's own extension wins whenever it is loaded. Delete this module then.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TenantAPIKeyFallbackScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.TenantAPIKeyAuthentication"
    name = "bearerAuth"
    priority = -1

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
