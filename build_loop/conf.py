"""Defaults of the build loop's settings inside a host project (see tenants/conf.py)."""

DEFAULTS = {
    # A running build whose worker has not touched its heartbeat for this long is failed.
    "BUILD_STALE_AFTER_SECONDS": 900,
    "BUILD_MAX_TOKENS": 2000,
}
