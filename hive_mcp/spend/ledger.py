"""The ledger's shapes and the backend interface both stores (SQLite, Redis) implement.

A backend does three things atomically: `reserve` (check every applicable
budget against spent + live reservations + what this reservation holds against
it, then hold it, or refuse and hold nothing), `settle` (drop the reservation, record the call and
add its actual cost to the totals), `release` (drop the reservation). A
reservation carries a lease; an expired one no longer counts (a process killed
mid-call leaks nothing past its lease).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from .budgets import CALLER, GROUP, Budget, scope_of, scopes, usd

__all__ = ["Backend", "CallRecord", "Charge", "Refused", "Reservation", "TotalRow"]


@dataclass(frozen=True)
class Reservation:
    """A held worst case: `amount` micro-USD for `caller` on `group`, counted in the periods of `start`.

    `groups` holds each group the call may reach (`group`, then the fallback groups a budget let it take) with
    its worst case at that group's own prices: a scope that follows the group (a model group's) holds that
    group's own, every other scope `amount` (the dearest of them: the call lands on one). Empty: `group` alone,
    at `amount`. The scopes are those `budgets.scopes` gives for the call's keys.
    """

    id: str
    caller: str
    group: str
    amount: int
    start: datetime
    expires: datetime
    groups: tuple[tuple[str, int], ...] = ()
    keys: tuple[tuple[str, str], ...] = ()
    """The call's keys a kind of scope may read besides its caller and group (the call layer gives them)."""

    def keys_at(self, group: str) -> dict[str, str]:
        """The call's keys, on model group `group`."""
        return {**dict(self.keys), CALLER: self.caller, GROUP: group}

    def holds(self) -> list[tuple[str, int]]:
        """Each scope held (`all`, `caller:NAME`, `model:GROUP`, ...) and its amount."""
        held: dict[str, int] = {}
        for g, amount in self.groups or ((self.group, self.amount),):
            held.update((scope, amount if per_group else self.amount) for scope, per_group in scopes(self.keys_at(g)))
        return list(held.items())

    def charged(self, group: str) -> list[str]:
        """The scopes the call's cost counts in once model group `group` answered it."""
        return [scope for scope, _ in scopes(self.keys_at(group))]

    def amount_for(self, b: Budget) -> int:
        """What this reservation holds against `b` (0 for a model group it cannot reach)."""
        return dict(self.holds()).get(scope_of(b), 0)


@dataclass(frozen=True)
class CallRecord:
    """One finished call as the ledger keeps it. `cost` is micro-USD; never a token or a prompt.

    `estimated`: the tokens are litellm's count of what was sent and received, not the provider's usage (a
    call cut short: cancelled, failed mid-stream, past its deadline or its max_tokens). `group` is the group
    that answered and is charged."""

    time: datetime
    caller: str
    group: str
    deployment: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: int
    conversation_id: str | None
    unpriced: bool
    estimated: bool = False
    called: str | None = None
    """The group the caller named (an alias resolved): `group`, unless a fallback group answered. None in rows
    written before it was kept."""


@dataclass(frozen=True)
class Charge:
    """What a call that ended without a response was charged, as its row says (`Spend.settle_short`); all zero
    when it owed nothing (no row)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """None: the group charged has no known price (the row says `unpriced`)."""
    estimated: bool = False

    @classmethod
    def of(cls, row: CallRecord) -> Charge:
        return cls(row.input_tokens, row.output_tokens, None if row.unpriced else usd(row.cost), row.estimated)


@dataclass(frozen=True)
class TotalRow:
    """The spend of one caller on one model group over one UTC day."""

    day: str
    caller: str
    group: str
    cost: int
    calls: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int


class Refused(Exception):
    """A reservation that did not fit `budget`: `left` micro-USD remained (after live reservations)."""

    def __init__(self, budget: Budget, left: int, amount: int) -> None:
        super().__init__(budget.id)
        self.budget = budget
        self.left = left
        self.amount = amount


class Backend(ABC):
    """Where totals and reservations live. Blocking calls: run them in a worker thread."""

    name: str

    @abstractmethod
    def reserve(self, r: Reservation, budgets: list[Budget]) -> dict[str, int]:
        """Hold `r` against every budget of `budgets` or none; returns each budget's id -> micro-USD left after
        it. Raises Refused (the first budget that does not fit) and holds nothing then. Sweeps expired leases."""

    @abstractmethod
    def settle(self, r: Reservation, record: CallRecord) -> None:
        """Drop `r` (if still held) and record the call; its cost counts in each scope of
        `r.charged(record.group)`, in the day and month of `r.start`.
        Idempotent by `r.id`: a call settled again (replayed from the journal) is recorded once."""

    @abstractmethod
    def release(self, r: Reservation) -> None:
        """Drop `r` if still held."""

    @abstractmethod
    def state(self, budgets: list[Budget], now: datetime) -> dict[str, tuple[int, int]]:
        """Each budget's id -> (spent, reserved) micro-USD in its current period."""

    @abstractmethod
    def totals(self, since_day: str) -> list[TotalRow]:
        """Daily totals from `since_day` (YYYY-MM-DD) on."""

    @abstractmethod
    def calls(self, since: datetime) -> list[CallRecord]:
        """The individual calls kept, from `since` on, oldest first."""

    def close(self) -> None:
        """Let go of connections."""
