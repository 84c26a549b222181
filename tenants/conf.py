"""Switchyard's settings and their defaults inside any Django project.

Each app lists its settings with a default that works in a host project; the app's
AppConfig puts the missing ones onto `django.conf.settings` when Django loads it (before
any model is imported), the way django-appconf does. So `settings.LLM_MAX_RETRIES` and
`settings.SWITCHYARD_TENANT_MODEL` always exist, a host sets only what it wants to change,
and migrations can name `settings.SWITCHYARD_TENANT_MODEL` like `settings.AUTH_USER_MODEL`.

`FIELD_ENCRYPTION_KEY` has no default on purpose: a system check (tenants/checks.py)
reports it when it is missing.
"""

from django.conf import settings

DEFAULTS = {
    # The model that is a tenant: "app_label.ModelName", as AUTH_USER_MODEL. Set it before
    # the first migrate; its primary key may be a string (CharField/SlugField) or an integer.
    "SWITCHYARD_TENANT_MODEL": "tenants.Tenant",
    # Dotted path of a callable `(request) -> tenant | None` that lets a host project's own
    # authentication (sessions, its own tokens) reach the REST API and /v1 without keys.
    "SWITCHYARD_TENANT_RESOLVER": None,
    # Whether requests authenticated by the resolver must pass Django's CSRF check on
    # unsafe methods (leave on when the resolver relies on the session cookie).
    "SWITCHYARD_TENANT_RESOLVER_CSRF": True,
    # Path prefix under which errors answer in Switchyard's JSON shape (handler404 & co.)
    # and the body-size middleware applies.
    "SWITCHYARD_API_PREFIX": "/api/",
    # Largest request body the REST API accepts (413 above it).
    "API_MAX_BODY_BYTES": 1024 * 1024,
    # Page size of paginated lists (clients may ask for up to API_MAX_PAGE_SIZE).
    "API_PAGE_SIZE": 50,
    "API_MAX_PAGE_SIZE": 500,
}


def apply_defaults(defaults: dict) -> None:
    """Set every setting of `defaults` that the project did not set itself."""
    for name, value in defaults.items():
        if not hasattr(settings, name):
            setattr(settings, name, value)
