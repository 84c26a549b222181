"""What a validation run found: targets, one check per target, the report (SPEC §8)."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ..models import ProviderConfig

# Errors that may go away by themselves; everything else needs an operator.
TRANSIENT_ERROR_TYPES = frozenset(
    {"timeout", "connection", "server_error", "overloaded", "rate_limit"}
)


class CheckStatus(StrEnum):
    REACHABLE = "reachable"  # answered, key accepted
    UNREACHABLE = "unreachable"  # no answer, or a transient upstream failure
    UNUSABLE = "unusable"  # answered but refused, or the config itself is broken


def check_status(*, success: bool, error: dict | None) -> CheckStatus:
    """How a check (or a connection test) went, from its outcome's error dict."""
    if success:
        return CheckStatus.REACHABLE
    if error and error.get("type") in TRANSIENT_ERROR_TYPES:
        return CheckStatus.UNREACHABLE
    return CheckStatus.UNUSABLE


@dataclass
class ValidationTarget:
    """One thing to check: a stored config, or the environment fallback (config None)."""

    provider: str
    model: str
    tenant_id: str | None = None
    config: ProviderConfig | None = None

    @property
    def source(self) -> str:
        return "config" if self.config is not None else "environment"

    def resolve(self):
        """Where this target's calls go, by the rule calls use (no network)."""
        # Imported late: resolution pulls in the adapters, and ready() stays import-light.
        from ..engine.resolution import resolve

        return resolve(self.tenant_id, self.config)


@dataclass
class ProviderCheck:
    """The outcome of checking one target."""

    source: str
    provider: str
    model: str
    tenant_id: str | None
    config_id: str | None
    status: CheckStatus
    latency_ms: int
    checked_at: datetime
    error: dict | None = None

    @property
    def usable(self) -> bool:
        return self.status == CheckStatus.REACHABLE

    @property
    def reason(self) -> str:
        if not self.error:
            return ""
        return f"{self.error.get('type')}: {self.error.get('message')}"

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "config_id": self.config_id,
            "tenant_id": self.tenant_id,
            "provider": self.provider,
            "model": self.model,
            "status": str(self.status),
            "usable": self.usable,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at.isoformat(),
            "error": self.error,
        }


@dataclass
class ValidationReport:
    mode: str
    started_at: datetime
    duration_ms: int = 0
    checks: list[ProviderCheck] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        counts = {str(status): 0 for status in CheckStatus}
        for check in self.checks:
            counts[str(check.status)] += 1
        return {**counts, "total": len(self.checks)}

    @property
    def all_usable(self) -> bool:
        return bool(self.checks) and all(check.usable for check in self.checks)

    def health_entry(self) -> dict:
        """What /healthz shows: counts only, never tenants or keys."""
        return {
            "ran_at": self.started_at.isoformat(),
            "mode": self.mode,
            "duration_ms": self.duration_ms,
            **self.summary,
        }

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "ran_at": self.started_at.isoformat(),
            "duration_ms": self.duration_ms,
            "summary": self.summary,
            "results": [check.as_dict() for check in self.checks],
        }
