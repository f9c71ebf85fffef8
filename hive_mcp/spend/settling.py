"""The settlement after a call: charged what it cost, whether it answered or not, the row kept safe.

A call is charged for what it cost: the response's usage (`settle`), or, cut
short, what the provider billed plus its prompt and the text it produced by
litellm's count (`settle_short`). The holds `extend` made for replies billed
before a retry go once the call's row is in the backend (its reservation
settled first: holds are briefly counted twice, never missed). A call not
billed gives its reservation back (`release`); on shutdown the reservations
still held are released (`release_all`).

A settled call goes through the `Journal` (a local file) before the backend:
when the backend does not answer, the row waits there (fsynced) and is written
as soon as a Redis backend is back, or before this process reserves or settles
again, so no row is lost and no budget is checked without the calls this
process already settled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import anyio

from ..provider.base import Answering, LLMResponse, Usage
from .budgets import micro, usd
from .ledger import Backend, CallRecord, Charge
from .reserving import Reserving, Ticket

__all__ = ["SETTLE_BATCH_S", "Settling"]

logger = logging.getLogger("hive_mcp.spend")

SETTLE_BATCH_S = 0.2
"""How long a settled call waits in the journal for others to go into the backend with it. The backend's
write runs beside the next calls, and a write per call slowed each of them more than the write costs; a
reader of the ledger in this process (`settled`) and shutdown do not wait, and a budget check writes what
waits first (`reserve`)."""


@dataclass
class Settling(Reserving):
    """The settlement half of `Spend`: charges the calls `Reserving` held for, writes their rows (journal first,
    the backend in batches) and gives back what they held."""

    on_change: Callable[[str], None] | None = None
    """Told of each call settled: its caller."""
    _writer: ThreadPoolExecutor | None = None
    """Writes settled calls into the backend after the answer: one thread, so rows go in in order."""
    _writing: set[Future[None]] = field(default_factory=set)
    """The writes not yet done (`settled` waits for them)."""
    _queued: list[tuple[Ticket, CallRecord]] = field(default_factory=list)
    """Settled calls (in the journal already) the next write takes."""
    _flush: Future[None] | None = None
    """The write that will take `_queued`, while it has not taken it."""
    _hurry: threading.Event = field(default_factory=threading.Event)
    """Set when a reader or shutdown wants the queued calls written now."""

    def cost_of(self, ticket: Ticket, r: LLMResponse) -> int:
        """The call's actual cost in micro-USD: what the upstream said it cost (`cost_stated`: what the caller is
        billed, priced or not); else, at a known price, the provider's figure or its tokens at the prices of the
        group that answered; else 0 (unpriced)."""
        if r.cost_stated:
            return micro(r.cost_usd)
        price = ticket.price(r.answered_group)
        if price is None:
            return 0
        if r.cost_usd > 0:
            return micro(r.cost_usd)
        return micro(r.input_tokens * price[0] + r.output_tokens * price[1])

    async def settle_short(
        self, ticket: Ticket, *, sent: bool, text: str, billed: Usage | None, answering: Answering | None = None,
        conversation_id: str | None = None,
    ) -> Charge:  # fmt: skip
        """A call that ended without a response (cancelled, failed, past its deadline): charged what the provider
        billed (`billed`, replies it gave and the call did not keep), and, when its request was `sent` and not
        refused or when it produced `text`, its prompt and that text by litellm's count (the row says
        `estimated`), to the group and deployment it was `answering` on (a fallback's, at its prices; the called
        group's before any attempt was routed). A last reply `billed` holds at its usage (`Answering.counted`:
        one its content filter stopped after it relayed text) is charged that usage alone, its prompt and text
        not counted again. The replies whose cost the upstream stated (`Answering.stated`) are charged that cost,
        priced or not, and the rest as ever (the row is then not `unpriced`), as a response stating its cost is.
        Owing nothing, it is released. Returns what it was charged, as its row says. The row says `estimated` too
        when litellm counted any reply `billed` holds (`Answering.estimated`)."""
        owed = Usage()
        if billed is not None:
            owed.add(billed)
        where = answering or Answering()
        estimated = (sent or bool(text)) and not where.counted
        if estimated:
            counter = where.deployment or ticket.model  # the deployment's model, once an attempt was routed
            prompt = ticket.prompt_tokens
            if prompt is None or counter != ticket.model:
                prompt = await self._count(ticket.prompt, counter, ticket.tools)
            out = await anyio.to_thread.run_sync(self.provider.count_text, text, counter) if text else 0
            owed.input_tokens += prompt
            owed.output_tokens += out if out is not None else len(text.encode())
            owed.cost_usd = 0.0  # all of it at the reserved prices, the provider's figure covering only a part
        if not (owed.input_tokens or owed.output_tokens):
            await self.release(ticket)
            return Charge()
        reply = LLMResponse(**owed.model_dump(), model=where.deployment or ticket.model, answered_group=where.group)
        stated = where.stated
        if stated.cost_usd > 0:
            rest = LLMResponse(
                input_tokens=max(0, owed.input_tokens - stated.input_tokens),
                output_tokens=max(0, owed.output_tokens - stated.output_tokens),
                cost_usd=max(0.0, owed.cost_usd - stated.cost_usd), answered_group=where.group,
            )  # fmt: skip
            reply.cost_usd, reply.cost_stated = stated.cost_usd + usd(self.cost_of(ticket, rest)), True
        return Charge.of(self._settle(ticket, reply, conversation_id, estimated or where.estimated > 0)[0])

    async def settle(
        self, ticket: Ticket, r: LLMResponse, conversation_id: str | None = None, *, estimated: bool = False
    ) -> float | None:
        """Record the finished call at its actual cost; returns `budget_remaining_usd` (None: no budget applied)."""
        return self._settle(ticket, r, conversation_id, estimated)[1]

    def _settle(
        self, ticket: Ticket, r: LLMResponse, conversation_id: str | None, estimated: bool
    ) -> tuple[CallRecord, float | None]:
        """`settle`: the row written, and `budget_remaining_usd`."""
        cost = self.cost_of(ticket, r)
        called = r.model_group or ticket.reservation.group
        answered = r.answered_group or called
        record = CallRecord(
            time=self.clock(), caller=ticket.reservation.caller, group=answered, deployment=r.model,
            input_tokens=r.input_tokens, output_tokens=r.output_tokens, cached_tokens=r.cached_tokens,
            reasoning_tokens=r.reasoning_tokens, cost=cost, conversation_id=conversation_id,
            unpriced=ticket.price(answered) is None and not r.cost_stated, estimated=estimated or r.estimated,
            called=called,
        )  # fmt: skip
        ticket.done = True
        # In the journal now (one append to a local file: a killed process loses nothing), into the backend
        # with the calls settled in the next `SETTLE_BATCH_S`: the reservation holds the call's budget until its
        # row is written there, and a backend that does not answer keeps the hold until the row is replayed.
        self._journal().keep(ticket.reservation, record)
        with self._lock:
            self._queued.append((ticket, record))
            if self._flush is None:
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hive-spend")
                self._hurry.clear()
                self._flush = self._writer.submit(self._drain)
                self._writing.add(self._flush)
                self._flush.add_done_callback(self._written)
        return record, ticket.remaining_usd(cost)

    def _drain(self) -> None:
        """The writer: after `SETTLE_BATCH_S` (or sooner, when hurried), every call queued by then, in order."""
        self._hurry.wait(SETTLE_BATCH_S)
        with self._lock:
            batch, self._queued, self._flush = self._queued, [], None
        for ticket, record in batch:
            try:
                # Its extra holds go only once its row is in: until then they cover what was billed. A row left
                # waiting in the journal keeps them to their lease's end (counted twice meanwhile, never missed).
                if self._journal().commit(ticket.reservation, record):
                    self._release_extras(ticket)
            except Exception as exc:  # noqa: BLE001 - one call's failure leaves the rest of the batch to go in
                logger.warning("spend: a settled call waits in the journal: %s", exc)
            finally:
                self._forget(ticket)
            if self.on_change is not None:
                self.on_change(ticket.reservation.caller)

    def _written(self, write: Future[None]) -> None:
        with self._lock:
            self._writing.discard(write)

    def settled(self) -> Backend:
        """The backend, once every call settled so far is in it (or waits in the journal for it). Blocking:
        readers of the ledger go through it, in their worker thread, so a caller sees the calls it was answered."""
        with self._lock:
            writing = list(self._writing)
        self._hurry.set()
        wait(writing)
        return self.backend

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
            await anyio.to_thread.run_sync(self._release_extras, ticket)
        self._forget(ticket)

    def _release_extras(self, ticket: Ticket) -> None:
        """Give back the holds `extend` made for the call (blocking: a worker thread). Each is released by its
        own id, as the backend keys it; one that fails ends with its lease."""
        for extra in ticket.extras:
            try:
                self.backend.release(extra)
            except Exception as exc:  # noqa: BLE001 - the lease frees it
                logger.warning("spend: a retry's hold was not released (its lease will end it): %s", exc)

    def release_all(self) -> None:
        """Shutdown: the settled calls written, then every reservation this process still holds released."""
        with self._lock:
            writer, self._writer = self._writer, None
        self._hurry.set()
        if writer is not None:
            writer.shutdown(wait=True)  # a reservation is released only after its call's row is written
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for ticket in held:
            ticket.done = True
            try:
                self.backend.release(ticket.reservation)
            except Exception as exc:  # noqa: BLE001
                logger.warning("spend: a reservation was not released at shutdown: %s", exc)
            self._release_extras(ticket)
        self._settle_up()
        self._journal().close()

    def _forget(self, ticket: Ticket) -> None:
        with self._lock:
            self._held.pop(ticket.reservation.id, None)
