"""Per-tenant limits (SPEC §14): reserve-then-settle admission, shared by every process.

The engine's whole interface: `admit(...)` before the provider call, `settle(...)` after
it (admission.py). Backends: the database (default) or Redis (backends/). The limits row
is cached per process (policy.py); reconciliation rebuilds counters from usage rows.
"""

from .admission import (
    Admission,
    admit,
    headers_for_tenant,
    needs_headers,
    rate_limit_headers,
    settle,
)
from .policy import cached_policy

__all__ = [
    "Admission",
    "admit",
    "cached_policy",
    "headers_for_tenant",
    "needs_headers",
    "rate_limit_headers",
    "settle",
]
