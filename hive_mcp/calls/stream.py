"""A streamed call as the call layer reads it: the provider's events gathered into a `StreamState` that an
observer relays (the MCP layer sends its text as progress notifications) while `read_stream` fills it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from ..provider.events import (
    FinishEvent, ReasoningDeltaEvent, StreamErrorEvent, StreamEvent, TextDeltaEvent, ToolCallDeltaEvent,
)  # fmt: skip

__all__ = ["TAGS", "Nudge", "StreamState", "now", "read_stream"]

logger = logging.getLogger("hive_mcp")

Nudge = Callable[[], Awaitable[None]]
"""Awaited by a stream's reader after each event it adds to the `StreamState`: the observer may send what is
pending from the reader's own task."""

now = time.monotonic
"""The clock of a stream's relay: anyio's own on asyncio (the loop's), read without anyio's dispatch, which at a
slow stream's pace costs a chunk more than the rest of its bookkeeping."""

READER_SLICE_S = 0.005
"""The longest a stream reader runs before letting other tasks in."""
CLOSE_TIMEOUT_S = 2.0
"""The longest closing a provider stream may take once the call is over or cancelled."""


@dataclass
class StreamState:
    """What the upstream has sent so far, shared by the reader task and the notifier loop."""

    changed: anyio.Event = field(default_factory=anyio.Event)
    """Set when the relay has something to do: text its observer's nudge left to it, or the end."""
    pending: list[tuple[str, str]] = field(default_factory=list)
    """(kind, text) not yet sent: kind is "answer", or "reasoning" when `reasoning` is on."""
    reasoning: bool = False
    """Relay reasoning too; every message then starts with its kind's tag (`TAGS`)."""
    tag: str = ""
    """What every message starts with, before its kind's tag (a fan-out's branch: its model, `alpha: `)."""
    since: float = 0.0
    """When the oldest pending text arrived."""
    finish: FinishEvent | None = None
    error: StreamErrorEvent | None = None
    ended: anyio.Event = field(default_factory=anyio.Event)
    """Set once the reader is done: nothing more will arrive."""
    produced: list[str] = field(default_factory=list)
    """Every piece of text the model wrote so far, answer, reasoning and tool calls, relayed or not: what a call
    cut short owes for its output."""

    def add(self, ev: StreamEvent) -> None:
        if isinstance(ev, TextDeltaEvent):
            if ev.content:
                self.produced.append(ev.content)
                self._pend("answer", ev.content)
        elif isinstance(ev, ReasoningDeltaEvent):
            if ev.content:
                self.produced.append(ev.content)
                if self.reasoning:
                    self._pend("reasoning", ev.content)
        elif isinstance(ev, ToolCallDeltaEvent):
            self.produced.append(ev.content)  # owed, not relayed: the call arrives whole in the result
        elif isinstance(ev, FinishEvent):
            self.finish = ev
        elif isinstance(ev, StreamErrorEvent):
            self.error = ev

    @property
    def done(self) -> bool:
        return self.ended.is_set()

    def end(self) -> None:
        """Nothing more will arrive: whoever waits for text or for the end wakes."""
        self.ended.set()
        self.changed.set()

    def _pend(self, kind: str, text: str) -> None:
        if not self.pending:
            self.since = now()
        self.pending.append((kind, text))

    def take_pending(self) -> list[str]:
        """The messages to send for what is pending: each run of one kind joined into one."""
        runs: list[tuple[str, list[str]]] = []
        for kind, text in self.pending:
            if runs and runs[-1][0] == kind:
                runs[-1][1].append(text)
            else:
                runs.append((kind, [text]))
        self.pending.clear()
        tag = TAGS if self.reasoning else {"answer": ""}
        return [self.tag + tag[kind] + "".join(parts) for kind, parts in runs]


class _Turns:
    """Whether the loop has had a turn since `watch`: told by a callback it runs on its next turn, cheaper than a
    turn the reader yields itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.had = True
        self._asked = False

    def watch(self) -> None:
        self.had = False
        if not self._asked:
            self._asked = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self.had, self._asked = True, False


TAGS = {"answer": "answer: ", "reasoning": "reasoning: "}
"""With `include_reasoning`, each progress message starts with one of these, so the
answer's messages, their tag removed, still join to exactly the result's content."""


async def read_stream(events: AsyncIterator[StreamEvent], state: StreamState, nudge: Nudge) -> None:
    """Pull events off the provider's stream into `state`, nudging the observer after each; always close the stream.

    litellm hands over buffered chunks without ever suspending: once the reader
    has run `READER_SLICE_S` since the first event it read without the loop
    having a turn, it yields one, so the relay (and every other call) gets a turn
    and text goes out as it is read. Chunks a wait apart gave the loop its turns
    while the reader waited, and cost none more.

    On cancellation the close is what makes the upstream see its connection go,
    so it runs shielded (and bounded, so a wedged close cannot hang the server).
    """
    turns = _Turns(asyncio.get_running_loop())
    running_since = time.monotonic()
    try:
        async for ev in events:
            if turns.had:
                running_since = time.monotonic()
            state.add(ev)
            await nudge()
            if time.monotonic() - running_since >= READER_SLICE_S:
                await anyio.lowlevel.checkpoint()
                running_since = time.monotonic()
            turns.watch()
    except Exception:
        logger.exception("provider stream raised")
    finally:
        state.end()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                try:
                    await aclose()
                except Exception as exc:
                    logger.debug("closing the provider stream failed: %s: %s", type(exc).__name__, exc)


