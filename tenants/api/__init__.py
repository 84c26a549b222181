"""The REST infrastructure every Switchyard API shares: one error shape, the JSON parser,
pagination, the body-size limit and the OpenAPI pieces.

It lives in `tenants`, the lowest of the three apps (REST authentication and tenant scoping
are here too), so that the apps never import a project package: a host project references
these by dotted path, as `config/settings.py` does.
"""
