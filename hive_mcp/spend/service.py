"""`Spend`: the worst case of a call reserved before it, the actual cost settled after it.

The worst case is the prompt's tokens (the provider's count; without one, the
prompt's UTF-8 bytes, which no byte-level tokenizer exceeds) times the input
price, plus `max_tokens` times the output price, rounded up to a micro-USD. It
is held whole against every budget that applies or the call is refused: never
shrunk to the headroom left, so the last call cannot overshoot either. A call
that cannot be priced holds nothing and is refused when any applying budget
denies unpriced calls (the default: fail closed). Without budgets, calls are
only recorded.

A reservation's lease is the call's deadline plus `LEASE_MARGIN_S`: the
provider gives up by the deadline, so a lease outlives its call, and a process
killed mid-call stops holding budget once its leases run out. On shutdown the
reservations still held are released (`release_all`).

A settled call goes through the `Journal` (a local file) before the backend:
when the backend does not answer, the row waits there (fsynced) and is written
as soon as a Redis backend is back, or before this process reserves or settles
again, so no row is lost and no budget is checked without the calls this
process already settled.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import anyio

from ..limits import LEASE_MARGIN_S
from ..provider.base import LLMProvider, LLMResponse, Message
from .budgets import Budgets, micro, reset_at, usd
from .journal import Journal, default_journal_dir
from .ledger import Backend, CallRecord, Refused, Reservation

__all__ = ["LEASE_MARGIN_S", "BudgetRefusal", "Spend", "Ticket", "utc_now"]

logger = logging.getLogger("hive_mcp.spend")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BudgetRefusal(Exception):
    """A call refused before any upstream request; `str()` is the one line the caller sees."""


@dataclass
class Ticket:
    """One metered call: its reservation, the prices it was reserved at, what was left after reserving."""

    reservation: Reservation
    price: tuple[float, float] | None
    left: dict[str, int] = field(default_factory=dict)
    """Each applying budget's id -> micro-USD left after reserving; empty when no budget applied."""
    done: bool = False

    def remaining_usd(self, cost: int) -> float | None:
        """The smallest amount left among the budgets that applied, once this call cost `cost`."""
        if not self.left:
            return None
        return round(usd(min(self.left.values()) + self.reservation.amount - cost), 6)


@dataclass
class Spend:
    """Budgets enforced through one `Backend`, for one server's provider."""

    backend: Backend
    budgets: Budgets
    provider: LLMProvider
    group_of: Callable[[str], str] = lambda name: name
    clock: Callable[[], datetime] = utc_now
    admins: frozenset[str] = frozenset()
    on_change: Callable[[], None] | None = None
    _held: dict[str, Ticket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _prices: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    """Each model's price, looked up once: the config and litellm's local map do not change while serving."""
    journal: Journal | None = None
    """Where settled calls are written first (default: `spend-journal` in the hive home)."""

    def __post_init__(self) -> None:
        if self.journal is None:
            self.journal = Journal(default_journal_dir(), self.backend)
        shared = getattr(self.backend, "shared", None)  # the Redis backend's state store
        if shared is not None:
            shared.add_listener(self.journal.replay)  # Redis is back: what waits goes in now, not at the next call

    async def reserve(
        self, caller: str, model: str, messages: list[Message], *, system: str, max_tokens: int, deadline: float
    ) -> Ticket:
        """Hold the worst case of this call; raises BudgetRefusal (nothing held then)."""
        group = self.group_of(model)
        applying = self.budgets.applying(caller, group)
        if model not in self._prices:  # also without budgets: the unpriced flag
            self._prices[model] = await anyio.to_thread.run_sync(self.provider.price, model)
        price = self._prices[model]
        now = self.clock()
        amount = 0
        if price is None:
            denying = [b for b in applying if not b.allow_unpriced]
            if denying:
                raise BudgetRefusal(
                    f"budget: model {model} has no known price and the {denying[0].label()} applies: give the "
                    "group's prices (model_info input_cost_per_token, output_cost_per_token) or set unpriced: "
                    "allow on that budget; no request was sent"
                )
        elif applying:
            framed = ([{"role": "system", "content": system}] if system else []) + messages
            counted = await anyio.to_thread.run_sync(self.provider.count_tokens, framed, model)
            prompt = counted if counted is not None else len(json.dumps(framed, ensure_ascii=False).encode())
            amount = micro(prompt * price[0] + max_tokens * price[1])
        r = Reservation(
            id=secrets.token_hex(12), caller=caller, group=group, amount=amount, start=now,
            expires=now + timedelta(seconds=deadline + LEASE_MARGIN_S),
        )  # fmt: skip
        ticket = Ticket(r, price)
        if applying:
            # Calls this process settled while the backend was away (or a dead process left) go in first.
            await anyio.to_thread.run_sync(self._journal().replay)
            try:
                ticket.left = await anyio.to_thread.run_sync(self.backend.reserve, r, applying)
            except Refused as exc:
                raise BudgetRefusal(refusal_text(exc, now)) from None
            except Exception as exc:  # noqa: BLE001 - a budget that cannot be checked is not spent: fail closed
                raise BudgetRefusal(
                    f"budget: the spend ledger ({self.backend.name}) did not answer ({type(exc).__name__}); "
                    "no request was sent"
                ) from None
            with self._lock:
                self._held[r.id] = ticket
        return ticket

    def cost_of(self, ticket: Ticket, r: LLMResponse) -> int:
        """The call's actual cost in micro-USD: the provider's figure, else its tokens at the reserved prices."""
        if ticket.price is None:
            return 0
        if r.cost_usd > 0:
            return micro(r.cost_usd)
        return micro(r.input_tokens * ticket.price[0] + r.output_tokens * ticket.price[1])

    async def settle(self, ticket: Ticket, r: LLMResponse, conversation_id: str | None = None) -> float | None:
        """Record the finished call at its actual cost; returns `budget_remaining_usd` (None: no budget applied)."""
        cost = self.cost_of(ticket, r)
        record = CallRecord(
            time=self.clock(), caller=ticket.reservation.caller, group=r.model_group or ticket.reservation.group,
            deployment=r.model, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
            cached_tokens=r.cached_tokens, reasoning_tokens=r.reasoning_tokens, cost=cost,
            conversation_id=conversation_id, unpriced=ticket.price is None,
        )  # fmt: skip
        ticket.done = True
        try:
            # In the journal first: a backend that does not answer keeps the hold until the row is replayed.
            await anyio.to_thread.run_sync(self._journal().settle, ticket.reservation, record)
        finally:
            self._forget(ticket)
        if self.on_change is not None:
            self.on_change()
        return ticket.remaining_usd(cost)

    async def release(self, ticket: Ticket) -> None:
        """Give back a reservation whose call was not billed."""
        if ticket.done:
            return
        ticket.done = True
        if ticket.left:  # held only when a budget applied
            try:
                await anyio.to_thread.run_sync(self.backend.release, ticket.reservation)
            except Exception as exc:  # noqa: BLE001 - the lease frees it
                logger.warning("spend: a reservation was not released (its lease will end it): %s", exc)
        self._forget(ticket)

    def release_all(self) -> None:
        """Shutdown: release every reservation this process still holds."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for ticket in held:
            ticket.done = True
            try:
                self.backend.release(ticket.reservation)
            except Exception as exc:  # noqa: BLE001
                logger.warning("spend: a reservation was not released at shutdown: %s", exc)
        self._journal().replay()
        self._journal().close()

    def _journal(self) -> Journal:
        assert self.journal is not None  # set in __post_init__
        return self.journal

    def _forget(self, ticket: Ticket) -> None:
        with self._lock:
            self._held.pop(ticket.reservation.id, None)


def refusal_text(exc: Refused, now: datetime) -> str:
    reset = reset_at(exc.budget.period, now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"budget: the {exc.budget.label()} has ${usd(exc.left):.6f} left and this call may cost up to "
        f"${usd(exc.amount):.6f} (its prompt and max_tokens at the model's prices); it resets at {reset}; "
        "no request was sent"
    )
