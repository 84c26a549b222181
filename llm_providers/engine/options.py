"""Per-call limits: read timeout, overall deadline, retries (SPEC §5).

Three sources, and the lowest limit wins: the operator's settings (LLM_REQUEST_TIMEOUT,
LLM_REQUEST_DEADLINE, LLM_MAX_RETRIES) are ceilings; a tenant's config may lower them in
its metadata (`timeout`, `deadline`, `max_retries`); a caller (validation, the connection
test) may lower them for one call with `options=`. Plain values and arithmetic, so that
every transport runs a call under the same limits.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from ..transport.retry import default_deadline


@dataclass(frozen=True)
class CallLimits:
    """The concrete limits one call runs with."""

    read_timeout: float
    deadline: float
    max_retries: int


@dataclass(frozen=True)
class CallOptions:
    """Limits that lower the operator's; None has no opinion."""

    timeout: float | None = None  # read timeout, seconds
    deadline: float | None = None  # overall, retries and waits included, seconds
    max_retries: int | None = None

    def __post_init__(self):
        for name in ("timeout", "deadline"):
            if getattr(self, name) is not None and _positive(getattr(self, name)) is None:
                raise ValueError(f"{name} must be a positive number of seconds.")
        if self.max_retries is not None and _retries(self.max_retries) is None:
            raise ValueError("max_retries must be a non-negative integer.")

    @classmethod
    def from_metadata(cls, metadata: Mapping | None) -> "CallOptions":
        """A config's own limits; a value that is not valid is ignored (no opinion)."""
        meta = metadata if isinstance(metadata, Mapping) else {}
        return cls(
            timeout=_positive(meta.get("timeout")),
            deadline=_positive(meta.get("deadline")),
            max_retries=_retries(meta.get("max_retries")),
        )

    def capped(self, other: "CallOptions | None") -> "CallOptions":
        """Each limit the lower of the two."""
        if other is None:
            return self
        return CallOptions(
            timeout=_lower(self.timeout, other.timeout),
            deadline=_lower(self.deadline, other.deadline),
            max_retries=_lower(self.max_retries, other.max_retries),
        )

    def limits(self) -> CallLimits:
        """These limits under the operator's settings, which are ceilings."""
        ceiling = float(settings.LLM_REQUEST_TIMEOUT)
        read_timeout = _lower(self.timeout, ceiling)
        deadline = _lower(
            self.deadline or default_deadline(read_timeout), default_deadline(ceiling)
        )
        max_retries = _lower(self.max_retries, int(settings.LLM_MAX_RETRIES))
        return CallLimits(read_timeout=read_timeout, deadline=deadline, max_retries=max_retries)


def _lower(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _positive(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _retries(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
