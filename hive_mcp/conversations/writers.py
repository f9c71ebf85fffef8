"""The writer turns one store holds for this process's calls: renewed while the calls run, and given back once
the store answers when a call's end could not reach it.

A call on a conversation holds its turn in the store (`ConversationStore.writer`) with a short lease, renewed
every tick (`WRITER_TICK_S`, or a third of the lease when shorter) while the call runs. So a turn lasts as
long as its call and no longer: one whose process died, or whose renewals the store missed through an outage
longer than the lease, frees itself within one lease, whatever the call's deadline. A turn whose end the store
missed (away as the call ended) is remembered and given back at the first tick that reaches the store, at
once when the state store tells of its return (`wake`), and before this process takes that conversation's
turn again: the conversation is continued again within a tick of the store answering. It is forgotten once
its lease has ended it, so an outage keeps the ticks going for one lease at most after its last call.

Each tick's store work waits for another process's lock (SQLite) one tick at most, as the calls' own work
queues behind it (the least time once the store knows the lock as an outage). The ticks run in one task on
the event loop of the calls, started by the first turn held and ended when nothing is left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from ..sqlite import waiting_until
from .errors import StoreError

__all__ = ["WRITER_LEASE_S", "WRITER_TICK_S", "Turns"]

WRITER_LEASE_S = 10.0
"""A writer turn's lease: how long a turn outlives the last renewal its store took."""
WRITER_TICK_S = 1.0
"""How often held turns are renewed and missed ends tried again."""

Held = tuple[str, str]
"""A conversation id and the token of the call that holds its turn."""


class Turns:
    """The turns held through one store: `renew(held)` renews `(id, token, lease_s)` triples where the token
    still holds; `drop(id, token)` gives one back (both raise `StoreError` when the store is away)."""

    def __init__(
        self,
        renew: Callable[[list[tuple[str, str, float]]], Awaitable[None]],
        drop: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._renew, self._drop = renew, drop
        self._held: dict[Held, float] = {}
        self._missed: dict[Held, float] = {}
        """Turns whose end the store missed, and when (`time.monotonic()`) their lease ends it anyway."""
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False

    def __len__(self) -> int:
        """Turns held or still to give back."""
        return len(self._held) + len(self._missed)

    def hold(self, conversation_id: str, token: str, lease_s: float) -> None:
        self._held[(conversation_id, token)] = lease_s
        self._start()
        self._wake.set()  # a tick now, which counts this lease in the pace of the next

    async def end(self, conversation_id: str, token: str) -> None:
        """The call is over: give its turn back now, or remember it for the store's return (a call ending after
        `aclose` has nothing left to give back)."""
        if self._closed:
            return
        lease_s = self._held.pop((conversation_id, token), 0.0)
        try:
            await self._drop(conversation_id, token)
        except StoreError:
            self._missed[(conversation_id, token)] = time.monotonic() + lease_s
            self._start()

    async def settle(self, conversation_id: str) -> None:
        """Give back the turns of `conversation_id` whose end the store missed (while it is away, the take after
        this fails too, naming what the caller asked for)."""
        with contextlib.suppress(StoreError):
            await self._give_back(lambda held: held[0] == conversation_id)  # waiting as the call waits

    def wake(self) -> None:
        """The store is back (from any thread): try the missed ends now."""
        loop = self._loop
        if loop is not None and self._missed:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._wake.set)

    async def aclose(self) -> None:
        """The store closes (the process stops): stop ticking and give back every turn held through it, those of
        calls still running (nothing they write goes through this store any more) and the missed ends, in one
        last try that waits a tick at most: another process takes them at once, not once their leases end."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._closing = True
            self._wake.set()
            await task  # not cancelled: a tick's store work in flight is shielded, and ends first
        now = time.monotonic()
        for held, lease_s in self._held.items():
            self._missed[held] = now + lease_s
        self._held.clear()
        with contextlib.suppress(StoreError), waiting_until(time.monotonic() + WRITER_TICK_S):
            await self._give_back()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._tick_on(), name="hive-conversation-turns")

    async def _tick_on(self) -> None:
        while self._held or self._missed:
            tick = min([WRITER_TICK_S, *(lease / 3 for lease in self._held.values())])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            self._wake.clear()
            if self._closing:
                return
            # A lock is waited for one tick at most (the least once the store knows it is away: its outage).
            with contextlib.suppress(StoreError), waiting_until(time.monotonic() + tick):
                await self._give_back()  # the store is away: the next tick tries again
                if self._held:
                    await self._renew([(i, t, lease) for (i, t), lease in self._held.items()])

    async def _give_back(self, which: Callable[[Held], bool] = lambda held: True) -> None:
        """Give back the missed turns `which` picks; forget those whose lease has ended them meanwhile."""
        now = time.monotonic()
        for held, ends in list(self._missed.items()):
            if ends <= now:
                del self._missed[held]
        for held in [h for h in self._missed if which(h)]:
            await self._drop(*held)  # a tick and a call's `settle` may give one back both: the drop is a no-op
            self._missed.pop(held, None)
