"""The admission backend interface: reserve, settle, sweep, read, reconcile.

Every backend does each of these as one atomic step against state shared by all
processes (and machines), so concurrent reservations can never overshoot a limit.
Money is in 1e-8 USD units; windows are policy.Windows.
"""

from dataclasses import dataclass

from ..policy import Limits, Windows


@dataclass(frozen=True)
class Counters:
    """A tenant's counters, rolled to the current windows (what has been used or reserved)."""

    minute_requests: int = 0
    minute_tokens: int = 0
    day_cost: int = 0
    month_cost: int = 0
    inflight: int = 0


@dataclass(frozen=True)
class Reservation:
    """The worst case of one call: 1 request, `tokens`, `cost` (units)."""

    tenant_id: str
    tokens: int
    cost: int
    expires_at: float


@dataclass(frozen=True)
class Usage:
    """Actual totals over a tenant's current windows (from its usage rows)."""

    minute_requests: int = 0
    minute_tokens: int = 0
    day_cost: int = 0
    month_cost: int = 0


class Backend:
    name = "?"

    def reserve(
        self, reservation: Reservation, limits: Limits, w: Windows
    ) -> tuple[int | str | None, Counters]:
        """Atomically check `limits` and add the reservation; (hold id or None, counters).

        None: refused, with the counters that refused it; nothing was added. Expired holds
        of the tenant are released first when that is what stands in the way.
        """
        raise NotImplementedError

    def settle(self, tenant_id: str, hold_id, tokens: int, cost: int, w: Windows) -> None:
        """Replace the hold's reservation by the actual usage (or add it, if it expired)."""
        raise NotImplementedError

    def counters(self, tenant_id: str, w: Windows) -> Counters:
        raise NotImplementedError

    def sweep(self, w: Windows, tenant_id: str | None = None) -> int:
        """Release expired holds (of one tenant, or all); how many."""
        raise NotImplementedError

    def reconcile(self, tenant_id: str, usage: Usage, w: Windows) -> tuple[Counters, Counters]:
        """Set the counters to `usage` plus the live holds; (before, after)."""
        raise NotImplementedError
