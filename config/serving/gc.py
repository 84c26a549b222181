"""The garbage collector's first threshold, raised for a process holding many requests open.

CPython collects its youngest generation each time allocations outnumber deallocations by
the first threshold (2,000 in 3.13), and each collection walks every object that is young
and still alive. A web process holding hundreds of requests open has thousands of such
objects at any moment (their requests, responses, parsed JSON, futures), so the default
threshold makes it walk them again and again: measured with bench/concurrency/cpu_asgi.py,
the collector took about half a millisecond of each /v1 request's CPU at 256 and 1,024
requests open; `SERVER_GC_THRESHOLD=50000` takes 15–25% off the CPU per request
(bench/README.md, "Garbage collection"). The older generations keep Python's thresholds,
so cyclic garbage is still collected; what a request frees by reference counting (nearly
all of it) is freed at once either way.
"""

import gc

from django.core.exceptions import ImproperlyConfigured

MINIMUM = 700


def tune(threshold: int) -> None:
    """Set the first threshold (0: leave Python's own)."""
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or (threshold and threshold < MINIMUM)
    ):
        raise ImproperlyConfigured(
            f"SERVER_GC_THRESHOLD must be 0 (Python's default) or an integer of at least "
            f"{MINIMUM} (got {threshold!r})."
        )
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
