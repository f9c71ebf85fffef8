"""The reservation before a call: the worst case held against every budget that applies, or a refusal.

The worst case is the prompt's tokens (the provider's count of everything sent:
the system prompt, the messages with their image parts, the tools' definitions
and a `response_format` schema; without a count, their UTF-8 bytes, which no
byte-level tokenizer exceeds) times the input price, plus `max_tokens` times
the output price, rounded up to a micro-USD, for each group the call may reach
(its own and its fallbacks', each at its own prices). It is held whole against
every budget that applies or the call (or the fallback hop) is refused: never
shrunk to the headroom left, so the last call cannot overshoot either. A group
that cannot be priced holds nothing and is refused when any applying budget
denies unpriced calls (the default: fail closed). Without budgets, calls are
only recorded.

A reply the provider billed and the call did not keep (an empty one, retried)
is owed on top of the attempt after it, which the reservation alone covers:
before that retry, what was billed is held too (`extend`), against the same
budgets, or the retry is not sent.

A reservation's lease is the call's deadline plus `LEASE_MARGIN_S`: the
provider gives up by the deadline, so a lease outlives its call, and a process
killed mid-call stops holding budget once its leases run out. Before each
reservation, the calls this process settled while the backend was away go in
from the journal, so no budget is checked without them.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio

from ..limits import LEASE_MARGIN_S
from ..refusal import Refusal
from ..provider.base import LLMProvider, Message, ModelRef, Usage
from .budgets import Budget, Budgets, micro, reset_at, usd
from .journal import Journal, default_journal_dir
from .ledger import Backend, Refused, Reservation

__all__ = ["LEASE_MARGIN_S", "BudgetRefusal", "Reserving", "Ticket", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BudgetRefusal(Refusal):
    """A call refused by a budget, before any upstream request; `str()` is the one line the caller sees."""

    field = "budget"


@dataclass
class Ticket:
    """One metered call: its reservation, the prices it was reserved at, what was left after reserving."""

    reservation: Reservation
    model: str = ""
    prompt: list[Message] = field(default_factory=list)
    """The messages sent (the system prompt first, a response_format schema last): what a call cut short owes
    for its input, with `tools`."""
    tools: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    """What `prompt` weighs in tokens (the provider's `prompt_size`), once weighed."""
    prices: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    """Each group the call may reach -> its prices (None: unpriced)."""
    refused: dict[str, str] = field(default_factory=dict)
    """Fallback groups a budget refused -> the one-line refusal: the call does not go there."""
    left: dict[str, int] = field(default_factory=dict)
    """Each applying budget's id -> micro-USD left after reserving; empty when no budget applied."""
    budgets: list[Budget] = field(default_factory=list)
    """The budgets held against."""
    extras: list[Reservation] = field(default_factory=list)
    """The holds `extend` made for replies billed before a retry (ids `{reservation id}.{n}`, its lease): released
    after the call's reservation is settled or released."""
    done: bool = False

    def price(self, group: str | None = None) -> tuple[float, float] | None:
        """`group`'s prices; the called group's when `group` is None or one the call could not reach."""
        return self.prices.get(group or "", self.prices.get(self.reservation.group))

    def remaining_usd(self, cost: int) -> float | None:
        """The smallest amount left among the budgets that applied, once this call cost `cost`."""
        if not self.left:
            return None
        r = self.reservation
        return round(usd(min(self.left[b.id] + r.amount_for(b) for b in self.budgets) - cost), 6)


@dataclass
class Reserving:
    """The reservation half of `Spend`: holds a call's worst case (`reserve`) and what a retry owes on top of it
    (`extend`), and keeps the tickets it holds until the settlement half is done with them."""

    backend: Backend
    budgets: Budgets
    provider: LLMProvider
    clock: Callable[[], datetime] = utc_now
    on_refused: Callable[[], None] | None = None
    """Told of each call a budget refused, on the event loop (so it must not block)."""
    _held: dict[str, Ticket] = field(default_factory=dict)
    _strays: list[Reservation] = field(default_factory=list)
    """Holds asked for that the backend did not answer (a timeout): it may still have made them (a frozen Redis
    runs the script when it wakes), and nothing would release them before their lease ends. The next
    reservation releases them first (`_settle_up`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refs: dict[str, ModelRef] = field(default_factory=dict)
    """Each name called by name (not as a resolved `ModelRef`), resolved once: the config and litellm's local
    map do not change."""
    journal: Journal | None = None
    """Where settled calls are written first (default: `spend-journal` in the hive home)."""

    def __post_init__(self) -> None:
        if self.journal is None:
            self.journal = Journal(default_journal_dir(), self.backend)
        shared = getattr(self.backend, "shared", None)  # the Redis backend's state store
        if shared is not None:
            shared.add_listener(self.journal.replay)  # Redis is back: what waits goes in now, not at the next call

    async def reserve(
        self, caller: str, model: str | ModelRef, messages: list[Message], *, system: str, max_tokens: int, deadline: float,
        tools: list[dict[str, Any]] | None = None, response_format: dict[str, Any] | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> Ticket:  # fmt: skip
        """Hold the worst case of this call; raises BudgetRefusal (nothing held then).

        Every group the call may reach is asked: `model`'s own, refused outright by a budget, and each of its
        fallback groups, each at its own prices; a fallback that a budget refuses is left out (`Ticket.refused`:
        the provider does not take that hop) and the rest are held in one transaction. `model` is the call's
        resolved `ModelRef`, or a name resolved here. The budgets held against are those applying to the call's
        keys on each group: `caller`, the group, and `keys` (the call's others a kind of scope reads).
        """
        if not isinstance(model, ModelRef):
            if model not in self._refs:
                self._refs[model] = await anyio.to_thread.run_sync(self.provider.resolve, model)
            model = self._refs[model]
        ref, model = model, model.name
        group, groups = ref.group, list(ref.reach)  # the group `model` calls: an alias's, a wildcard group
        prices = {g: ref.prices.get(g) for g in groups}  # also without budgets: the unpriced flag
        now = self.clock()
        lease = now + timedelta(seconds=deadline + LEASE_MARGIN_S)
        base = Reservation(secrets.token_hex(12), caller, group, 0, now, lease,
                           keys=tuple(sorted((keys or {}).items())))
        refused: dict[str, str] = {}
        for g in groups:
            denying = [b for b in self.budgets.applying(base.keys_at(g)) if not b.allow_unpriced]
            if prices[g] is None and denying:
                text = unpriced_text(model if g == group else g, denying[0])
                if g == group:
                    raise self._refusal(f"{text}; no request was sent")
                refused[g] = f"fallback {g} not tried: {text}"
        framed = ([{"role": "system", "content": system}] if system else []) + messages
        if response_format:  # sent as the request's schema: counted as the text it is
            framed.append({"role": "system", "content": json.dumps(response_format, ensure_ascii=False)})
        ticket = Ticket(base, model, framed, tools, prices=prices, refused=refused)
        if not any(self.budgets.applying(base.keys_at(g)) for g in groups):
            return ticket
        ticket.prompt_tokens = await self._count(framed, model, tools)
        await anyio.to_thread.run_sync(self._settle_up)
        amounts = {g: micro(ticket.prompt_tokens * p[0] + max_tokens * p[1]) if p else 0 for g, p in prices.items()}
        while True:
            allowed = [g for g in groups if g not in refused]
            r = replace(base, amount=max(amounts[g] for g in allowed), groups=tuple((g, amounts[g]) for g in allowed))
            budgets = list({b.id: b for g in allowed for b in self.budgets.applying(base.keys_at(g))}.values())
            try:
                left = await anyio.to_thread.run_sync(self.backend.reserve, r, budgets)
            except Refused as exc:
                hop = _hop_refused(exc, group, allowed, amounts)
                if hop is None:
                    raise self._refusal(refusal_text(exc, now)) from None
                refused[hop] = f"fallback {hop} not tried: {refusal_text(exc, now, 'no request was sent to it')}"
                continue
            except Exception as exc:  # noqa: BLE001 - a budget that cannot be checked is not spent: fail closed
                self._stray(r)
                raise self._refusal(
                    f"budget: the spend ledger ({self.backend.name}) did not answer ({type(exc).__name__}); "
                    "no request was sent"
                ) from None
            break
        ticket.reservation, ticket.left, ticket.budgets = r, left, budgets
        with self._lock:
            self._held[r.id] = ticket
        return ticket

    async def extend(self, ticket: Ticket, billed: Usage, stated: Usage) -> None:
        """Before a retry that follows replies the provider billed and the call did not keep (`billed`: all of
        them so far; `stated`: the part of it whose cost the upstream stated), hold what they cost beside the
        call's reservation, so together they cover what was billed
        plus the next attempt's worst case (the reservation's). The shape is the reservation's: each group the
        call may still reach holds `billed` at its own prices (the call is charged at the prices of the group
        that answers, not yet known), the overall and caller budgets the dearest; what earlier extensions hold
        is not held again. Atomic against the same budgets, through the backend's `reserve`. Raises
        BudgetRefusal (nothing more held), whose line follows the provider's `budget error from model ...:`.
        Without a budget applying (nothing held) there is nothing to cover."""
        r = ticket.reservation
        if not ticket.left:
            return
        cover = {g: _billed_at(billed, stated, ticket.prices.get(g)) for g, _ in r.groups or ((r.group, r.amount),)}
        before = {g: sum(dict(e.groups).get(g, 0) for e in ticket.extras) for g in cover}
        amount = max(cover.values()) - sum(e.amount for e in ticket.extras)
        more = tuple((g, max(0, a - before[g])) for g, a in cover.items())
        if amount <= 0 and not any(a for _, a in more):
            return
        extra = replace(r, id=f"{r.id}.{len(ticket.extras) + 1}", amount=max(amount, 0), groups=more)
        # Listed before it is made: a call cancelled while the backend holds it still releases it when settled.
        ticket.extras.append(extra)
        await anyio.to_thread.run_sync(self._settle_up)
        try:
            await anyio.to_thread.run_sync(self.backend.reserve, extra, ticket.budgets)
        except Refused as exc:
            ticket.extras.remove(extra)
            reset = reset_at(exc.budget.period, r.start).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise self._refusal(
                f"the {exc.budget.label()} has ${usd(exc.left):.6f} left and retrying after a reply the provider "
                f"billed needs ${usd(exc.amount):.6f} more held (that reply, beside the next attempt's worst case "
                f"already held); it resets at {reset}; the retry was not sent"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a budget that cannot be checked is not spent: fail closed
            ticket.extras.remove(extra)
            self._stray(extra)
            raise self._refusal(
                f"the spend ledger ({self.backend.name}) did not answer ({type(exc).__name__}); the retry after a "
                "billed reply was not sent"
            ) from None

    def _refusal(self, text: str) -> BudgetRefusal:
        """The refusal `reserve` raises, `on_refused` told of it first: every budget refusal goes through here."""
        if self.on_refused is not None:
            self.on_refused()
        return BudgetRefusal(text)

    async def _count(self, messages: list[Message], model: str, tools: list[dict[str, Any]] | None) -> int:
        """What `messages` and `tools` weigh for `model` (the provider's `prompt_size`), in a worker thread."""
        size = await anyio.to_thread.run_sync(lambda: self.provider.prompt_size(messages, model, tools=tools))
        return size.tokens

    def _stray(self, r: Reservation) -> None:
        with self._lock:
            self._strays.append(r)

    def _settle_up(self) -> None:
        """Before a reservation (blocking): calls this process settled while the backend was away (or a dead
        process left) go in, and the holds the backend may have made after their call gave up are released."""
        self._journal().replay()
        with self._lock:
            strays, self._strays = self._strays, []
        for i, r in enumerate(strays):
            try:
                self.backend.release(r)
            except Exception:  # noqa: BLE001 - still away: tried again before the next reservation
                with self._lock:
                    self._strays.extend(strays[i:])
                return

    def _journal(self) -> Journal:
        assert self.journal is not None  # set in __post_init__
        return self.journal


def _hop_refused(exc: Refused, group: str, allowed: list[str], amounts: dict[str, int]) -> str | None:
    """The fallback group whose hop `exc` refuses (left out, the rest reserved again); None: the call itself.

    A group's own budget (`Budget.per_group`) refuses its hop; any other, the dearest fallback dearer than the
    called group (it held the most), so the call goes on without it while the called group alone fits.
    """
    if exc.budget.per_group:
        return exc.budget.name if exc.budget.name != group else None
    dearer = [g for g in allowed if g != group and amounts[g] > amounts[group]]
    return max(dearer, key=lambda g: amounts[g]) if dearer else None


def _billed_at(billed: Usage, stated: Usage, price: tuple[float, float] | None) -> int:
    """What `billed` is charged on a group at `price`, as `settle_short` charges it: the part whose cost was
    `stated` at that cost, priced or not; the rest by `cost_of`'s rule (the provider's figure, else the tokens at
    the price; the larger of the two when both are known), 0 unpriced."""
    held = micro(stated.cost_usd)
    if price is None:
        return held
    tokens_in = max(0, billed.input_tokens - stated.input_tokens)
    tokens_out = max(0, billed.output_tokens - stated.output_tokens)
    rest = max(micro(max(0.0, billed.cost_usd - stated.cost_usd)), micro(tokens_in * price[0] + tokens_out * price[1]))
    return held + rest


def unpriced_text(model: str, budget: Budget) -> str:
    return (
        f"budget: model {model} has no known price and the {budget.label()} applies: give the group's prices "
        "(model_info input_cost_per_token, output_cost_per_token) or set unpriced: allow on that budget"
    )


def refusal_text(exc: Refused, now: datetime, tail: str = "no request was sent") -> str:
    reset = reset_at(exc.budget.period, now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"budget: the {exc.budget.label()} has ${usd(exc.left):.6f} left and this call may cost up to "
        f"${usd(exc.amount):.6f} (its prompt and max_tokens at the model's prices); it resets at {reset}; {tail}"
    )
