"""Per-tenant throttle for the endpoints that spend provider tokens."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle


class LLMTestThrottle(SimpleRateThrottle):
    """At most LLM_TEST_THROTTLE_RATE test calls per tenant (all its keys together).

    Counts live in the default cache: use a shared cache (CACHE_URL) with several instances.
    """

    scope = "llm_test"

    def get_rate(self):
        # Read at request time so that the setting (and tests' overrides) always apply.
        return settings.LLM_TEST_THROTTLE_RATE

    def get_cache_key(self, request, view):
        tenant = getattr(request.user, "tenant", None)
        if tenant is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": tenant.pk}


class LimitRefused(exceptions.Throttled):
    """The tenant's own limits (SPEC §14) refused a call: 429 with code `rate_limited` or
    `budget_exceeded`, `Retry-After` and `details.retry_after` when waiting helps."""

    def __init__(self, error):
        super().__init__(wait=error.retry_after, detail=error.message, code=error.type)

    def __str__(self):
        return str(self.detail)
