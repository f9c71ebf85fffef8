"""The conversation store interface, with the rules both backends share.

`ConversationStore` does the checks that need no storage (id shape,
redaction, caps, the expected tip) and hands each backend one primitive per
write: `_insert` for a new thread (create, fork) and `_advance` for an append.
Each primitive is atomic in its backend, so what holds here holds for both:

* An append writes the caller's new messages and the answer, and moves the
  tip, in one atomic step guarded by a compare-and-swap on the tip the caller
  read: a writer that lost the race gets `ConversationConflict` and has written
  nothing; no turn is ever silently lost, across processes or machines.
* A failed call stores nothing, because nothing is stored until the caller
  appends the finished turn.
* A fork is a new thread whose tip is an existing message: nothing is copied,
  and the source is unchanged (only its last use moves).
* `owner` isolates callers: a thread owned by another caller is
  `UnknownConversation`, exactly like an id never issued, and so is one that
  expired or was evicted (only its owner is told so). `owner=None` is the
  operator's view (the command line): every thread.
"""

from __future__ import annotations

import math
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import anyio

from .errors import (
    ConversationBusy, ConversationConflict, ConversationError, ExpiredConversation, UnknownConversation,
    UnknownMessage,
)  # fmt: skip
from .writers import WRITER_LEASE_S, Turns
from .records import (
    ChatMessage,
    ConversationLimits,
    Message,
    NewTurn,
    Redact,
    Thread,
    ThreadPage,
    ThreadView,
    Turn,
    advanced,
    check_id,
    check_room,
    new_id,
    new_record_id,
    prepare,
    size_of,
    to_us,
)

__all__ = ["WRITER_POLL_S", "ConversationStore", "Stored"]

WRITER_POLL_S = (0.02, 0.25)  # first and longest wait between two tries at a conversation another call writes

Stored = tuple[Message, str]
"""A message to write and its JSON text (what `max_bytes` counts)."""

Incoming = Iterable[ChatMessage | Mapping[str, Any]]


class ConversationStore(ABC):
    """Conversations kept in one backend. Every method may raise `StoreError` (one line naming the store)."""

    name: str
    """The store as shown in messages: a path, or a URL without credentials."""

    def __init__(
        self,
        *,
        limits: ConversationLimits | None = None,
        redact: Redact | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits or ConversationLimits()
        self.redact = redact
        self.clock = clock
        self._turns = Turns(self._renew_writers, self._drop_writer)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    # -- reads ---------------------------------------------------------------

    async def thread(self, conversation_id: str, *, owner: str | None = None) -> Thread:
        """The thread's current record (tip and counters), without its messages."""
        try:
            return self._visible(await self._thread(check_id(conversation_id)), owner)
        except ExpiredConversation as gone:
            raise self._told(gone, owner) from None

    async def get(self, conversation_id: str, *, owner: str | None = None) -> ThreadView:
        """The thread with its messages root first, as the next model call should receive them."""
        try:
            view = await self._view(check_id(conversation_id))
        except ExpiredConversation as gone:
            raise self._told(gone, owner) from None
        self._visible(view.thread, owner)
        return view

    async def list(
        self,
        *,
        owner: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
    ) -> ThreadPage:
        """Threads most recently used first; `model` keeps those a turn of which used it, `since` those used since."""
        if limit < 1:
            raise ValueError("limit: must be at least 1")
        return await self._list(owner=owner, limit=limit, cursor=cursor, model=model, since=since)

    # -- writes --------------------------------------------------------------

    async def create(
        self, *, owner: str, messages: Incoming = (), turn: NewTurn | None = None, thread_id: str | None = None
    ) -> Thread:
        """A new thread holding `messages` (a first call's input and answer), as one turn when `turn` is given.

        `thread_id` is an id the caller drew with `new_id()` before the call, so the call's failure dump
        names the conversation its result returns; a fresh one by default."""
        now = self.now()
        thread_id = check_id(thread_id) if thread_id is not None else new_id()
        empty = Thread(id=thread_id, owner=owner, created=now, last_used=now, lineage=thread_id)
        return await self._new(empty, messages, turn, owner, touch=None, now=now)

    async def append(
        self,
        conversation_id: str,
        messages: Incoming,
        turn: NewTurn | None,
        *,
        expected_tip: str | None,
        owner: str | None = None,
        base: Thread | None = None,
    ) -> Thread:
        """Add one finished call (its new input messages, then the answer) after `expected_tip`.

        `expected_tip` is the tip of the thread the caller sent to the model.
        When the thread has moved since, nothing is written and
        `ConversationConflict` says so.

        `base` is the thread as the caller read it (`view.thread`), which saves
        reading it again: its counters are those of its tip, and the
        compare-and-swap on that tip still decides whether the append lands.
        """
        if base is not None and base.id == check_id(conversation_id) and base.tip == expected_tip:
            thread = self._visible(base, owner)
        else:
            thread = await self.thread(conversation_id, owner=owner)
        if thread.tip != expected_tip:
            raise ConversationConflict(thread.id)
        stored, turn_record, after = self._build(thread, messages, turn, owner or thread.owner)
        await self._advance(after, expected_tip, stored, turn_record)
        return after

    async def fork(
        self,
        conversation_id: str,
        *,
        owner: str | None = None,
        at: str | None = None,
        messages: Incoming = (),
        turn: NewTurn | None = None,
        thread_id: str | None = None,
    ) -> Thread:
        """A new thread continuing from message `at` of the source (its tip by default), plus `messages`.

        The fork and its first turn are written together, so a forked call that
        fails leaves no empty fork behind. The source is unchanged. `thread_id`: as for `create`.
        """
        view = None if at is None else await self.get(conversation_id, owner=owner)  # `at`: the chain counts
        source = view.thread if view is not None else await self.thread(conversation_id, owner=owner)
        now = self.now()
        point = source.tip if at is None else at
        counts: dict[str, Any] = {"turns": source.turns, "bytes": source.bytes}
        counts.update(cost_usd=source.cost_usd, unpriced_turns=source.unpriced_turns, models=source.models)
        if view is not None and point != source.tip:
            counts = self._counts_at(view, point)
        fork = Thread(
            id=check_id(thread_id) if thread_id is not None else new_id(), owner=owner or source.owner,
            created=now, last_used=now, tip=point,
            forked_from=point, forked_from_thread=source.id, lineage=source.lineage, **counts,
        )  # fmt: skip
        return await self._new(fork, messages, turn, fork.owner, touch=source.id, now=now)

    async def delete(self, conversation_id: str, *, owner: str | None = None) -> None:
        """Forget the thread (later lookups: unknown). Its messages go when no other fork reaches them."""
        thread = await self.thread(conversation_id, owner=owner)
        await self._delete(thread)

    async def sweep(self) -> int:
        """Drop expired threads now (reads treat them as expired anyway); returns how many went."""
        return 0

    @abstractmethod
    async def count(self) -> int:
        """How many conversations are kept now (expired ones not counted)."""

    @asynccontextmanager
    async def writer(
        self, conversation_id: str, *, timeout_s: float | None, lease_s: float = WRITER_LEASE_S
    ) -> AsyncIterator[None]:
        """Be the one writer of `conversation_id` across every process on this store for the body, waiting at
        most `timeout_s` for the current one (`ConversationBusy` then). The turn is held by a lease of `lease_s`,
        renewed while the body runs (`writers.Turns`), so a holder that dies frees it within one lease; the
        body's end frees it at once, or once the store answers again when it is away then."""
        token = secrets.token_hex(8)
        await self._turns.settle(conversation_id)  # a turn of ours the store missed the end of: free it first
        if not await self._take_writer(conversation_id, token, lease_s):  # free: no wait, even with a zero timeout
            wait = WRITER_POLL_S[0]
            with anyio.move_on_after(math.inf if timeout_s is None else timeout_s) as waited:
                while True:
                    await anyio.sleep(wait)  # the holder ends or its lease does; nothing signals across machines
                    if await self._take_writer(conversation_id, token, lease_s):
                        break
                    wait = min(wait * 2, WRITER_POLL_S[1])
            if waited.cancelled_caught:
                raise ConversationBusy(conversation_id, timeout_s or 0.0)
        self._turns.hold(conversation_id, token, lease_s)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._turns.end(conversation_id, token)

    async def aclose(self) -> None:
        """Give back every turn this process holds through the store (`Turns.aclose`), then release the
        connections (a backend's own come after): serving closes its store as it stops."""
        await self._turns.aclose()

    async def __aenter__(self) -> ConversationStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- shared steps --------------------------------------------------------

    async def _take_writer(self, conversation_id: str, token: str, lease_s: float) -> bool:
        """Take `conversation_id`'s turn as `token` if nobody holds it (or the holder's lease ended)."""
        return True  # a store one process writes: the in-process `ConversationLocks` order its calls

    async def _drop_writer(self, conversation_id: str, token: str) -> None:  # noqa: B027 - nothing held
        """Give the turn back if `token` still holds it."""

    async def _renew_writers(self, held: list[tuple[str, str, float]]) -> None:  # noqa: B027 - nothing held
        """Renew each `(id, token, lease_s)` turn that `token` still holds, in one round trip."""

    def _cutoff_us(self) -> int | None:
        """A thread last used before this (microseconds) has expired; None when the TTL is off."""
        ttl = self.limits.ttl_s
        return None if ttl is None else to_us(self.now()) - int(ttl * 1_000_000)

    def _floor_us(self, since: datetime | None) -> int:
        """The earliest last use (microseconds) a listing shows: not expired, and not before `since`."""
        return max(x for x in (self._cutoff_us(), to_us(since) if since else None, -1) if x is not None)

    def _visible(self, thread: Thread, owner: str | None) -> Thread:
        if owner is not None and thread.owner != owner:
            raise UnknownConversation(thread.id)
        return thread

    @staticmethod
    def _told(gone: ExpiredConversation, owner: str | None) -> ConversationError:
        """A dropped thread reads as expired to its owner only: to anyone else, as never issued."""
        if owner is not None and gone.owner != owner:
            return UnknownConversation(gone.conversation_id)
        return gone

    def _build(
        self, thread: Thread, messages: Incoming, turn: NewTurn | None, owner: str, now: datetime | None = None
    ) -> tuple[list[Stored], Turn | None, Thread]:
        """Messages chained after the thread's tip, their turn, and the thread as it will be; caps checked."""
        prepared = prepare(messages, self.redact)
        new_bytes = size_of(prepared)
        check_room(thread, self.limits, 1 if turn is not None else 0, new_bytes)
        now = now or self.now()
        record = None
        if turn is not None:
            record = Turn(**turn.model_dump(), id=new_record_id(), thread_id=thread.id, owner=owner, created=now)
        stored: list[Stored] = []
        parent = thread.tip
        for body, text in prepared:
            message = Message(id=new_record_id(), parent_id=parent, turn_id=record.id if record else None, body=body)
            stored.append((message, text))
            parent = message.id
        return stored, record, advanced(thread, parent, turn, new_bytes, now)

    async def _new(
        self, thread: Thread, messages: Incoming, turn: NewTurn | None, owner: str, *, touch: str | None, now: datetime
    ) -> Thread:
        stored, record, after = self._build(thread, messages, turn, owner, now)
        await self._insert(after, stored, record, touch=touch)
        return after

    @staticmethod
    def _counts_at(view: ThreadView, point: str | None) -> dict[str, Any]:
        """The counters of the chain that ends at `point`, from the source's messages and turns."""
        ids = [m.id for m in view.messages]
        if point not in ids:
            raise UnknownMessage(view.thread.id, str(point))
        chain = view.messages[: ids.index(point) + 1]
        turn_ids = {m.turn_id for m in chain if m.turn_id}
        turns = [t for t in view.turns if t.id in turn_ids]
        models: list[str] = []
        for t in turns:
            if t.model not in models:
                models.append(t.model)
        return {
            "turns": len(turns),
            "bytes": size_of(prepare((m.body for m in chain), None)),
            "cost_usd": sum(t.usage.cost_usd or 0.0 for t in turns),
            "unpriced_turns": sum(t.usage.cost_usd is None for t in turns),
            "models": models,
        }

    # -- backend primitives --------------------------------------------------

    @abstractmethod
    async def _thread(self, conversation_id: str) -> Thread:
        """The live thread, else `UnknownConversation` or `ExpiredConversation`."""

    @abstractmethod
    async def _view(self, conversation_id: str) -> ThreadView:
        """The live thread with its chain and turns, else `UnknownConversation` or `ExpiredConversation`."""

    @abstractmethod
    async def _insert(self, thread: Thread, messages: list[Stored], turn: Turn | None, *, touch: str | None) -> None:
        """Write a new thread with its first messages atomically, evicting the oldest-used beyond the cap.

        `touch` is a fork's source: its last use moves to now. A fork whose
        point has gone meanwhile raises `ExpiredConversation` for the source.
        """

    @abstractmethod
    async def _advance(
        self, thread: Thread, expected_tip: str | None, messages: list[Stored], turn: Turn | None
    ) -> None:
        """Write `messages` and `turn`, and set the thread's tip and counters, iff its tip is still `expected_tip`."""

    @abstractmethod
    async def _list(
        self, *, owner: str | None, limit: int, cursor: str | None, model: str | None, since: datetime | None
    ) -> ThreadPage: ...

    @abstractmethod
    async def _delete(self, thread: Thread) -> None: ...
