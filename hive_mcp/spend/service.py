"""`Spend`: the worst case of a call reserved before it (`reserving`), the actual cost settled after it
(`settling`), and what has been spent as its readers see it (`usage`).

A call reserves (`reserve`; `extend` before a retry after a billed reply), then
settles (`settle`, `settle_short`) or releases (`release`) what it held. The
rules of each half are in its module's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from .reserving import LEASE_MARGIN_S, BudgetRefusal, Ticket, utc_now
from .settling import Settling
from .usage import UsageReport, spent_today, usage_report

__all__ = ["LEASE_MARGIN_S", "BudgetRefusal", "Spend", "Ticket", "utc_now"]


@dataclass
class Spend(Settling):
    """Budgets enforced through one `Backend`, for one server's provider."""

    admins: frozenset[str] = frozenset()
    """The callers who see everyone's spend."""

    def usage(self, who: str | None, *, settled: bool = True) -> UsageReport:
        """`who`'s usage (None: everyone's), with every call settled so far (`settled`; False: as the ledger
        stands, which a listener told of a settled call reads, from the writer itself). Blocking: in a worker
        thread."""
        return usage_report(self.settled() if settled else self.backend, self.budgets, self.clock(), who)

    def spent_today(self, who: str | None) -> dict[str, float]:
        """Each group's spend today (`who`'s only, unless None), with every call settled so far. Blocking."""
        return spent_today(self.settled(), self.clock(), who)
