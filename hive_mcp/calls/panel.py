"""A fan-out's calls as one set: none is sent unless every one of them may be.

Each member (every model's branch, and the judge) goes down the chain on its
own; the fan-out step (`calls.fanout.gather`, right after metering) holds it
until every member has been admitted and has reserved its worst case. A member
refused before that (a limit, a conversation, a budget) refuses the whole set:
the members held are refused too, before any upstream request, and what they
reserved is released by metering once their outcome is final. The judge waits
further, for the models' answers, which become its messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..refusal import Refusal

__all__ = ["NothingToJudge", "Panel", "Seat", "SetRefused"]


class SetRefused(Refusal):
    """One member of a set was refused before any was sent: every member is, with its line."""

    def __init__(self, member: str, refusal: Refusal) -> None:
        super().__init__(member, refusal)
        self.member = member
        self.refusal = refusal
        self.field = refusal.field

    def __str__(self) -> str:
        return f"{self.member}: {self.refusal}"


class NothingToJudge(Refusal):
    """Fewer than two models answered: there is nothing to compare."""

    field = "judge"

    def __init__(self, answered: Sequence[str]) -> None:
        super().__init__(answered)
        self.answered = tuple(answered)

    def __str__(self) -> str:
        who = f"only {self.answered[0]} answered" if self.answered else "no model answered"
        return f"judge: {who}, so there is nothing to compare; no request was sent"


@dataclass(eq=False)
class Panel:
    """The members of one fan-out while they run: how many reached the gate, the first refusal, the answers."""

    models: int
    judged: bool = False
    arrived: int = 0
    refused: SetRefused | None = None
    max_tokens: dict[str, int] = field(default_factory=dict)
    """What each model branch may write, as admitted: the judge's input is bounded by their sum."""
    deadline_s: float = 0.0
    """The longest deadline of the model branches: how long the judge may wait for their answers."""
    seated: anyio.Event = field(default_factory=anyio.Event)
    """Every model branch is at the gate (or one was refused): the judge may set out."""
    ready: anyio.Event = field(default_factory=anyio.Event)
    """Every member is at the gate (or one was refused): they go on, or are all refused."""
    answered: anyio.Event = field(default_factory=anyio.Event)
    judge_input: Sequence[Any] | None = None
    """The judge's messages once every model branch has ended (None: fewer than two answered)."""
    answered_by: Sequence[str] = ()

    @property
    def size(self) -> int:
        return self.models + (1 if self.judged else 0)

    async def arrive(self, model: str, max_tokens: int, deadline_s: float, *, judge: bool) -> None:
        """Wait at the gate until every member is there; raises `SetRefused` when one was refused meanwhile."""
        self.arrived += 1
        if not judge:
            self.max_tokens[model] = max_tokens
            self.deadline_s = max(self.deadline_s, deadline_s)
            if len(self.max_tokens) == self.models:
                self.seated.set()
        if self.arrived == self.size:
            self.ready.set()
        await self.ready.wait()
        if self.refused is not None:
            raise self.refused

    def refuse(self, member: str, refusal: Refusal) -> bool:
        """A member was refused. Before the gate opened it refuses the set (True); after, it is its own."""
        if self.ready.is_set() and self.refused is None:
            return False
        if self.refused is None:
            self.refused = refusal if isinstance(refusal, SetRefused) else SetRefused(member, refusal)
        self.seated.set()
        self.ready.set()
        return True

    def answer(self, answered_by: Sequence[str], messages: Sequence[Any]) -> None:
        """Every model branch has ended: which models answered, and what the judge is asked if there are two."""
        self.answered_by = tuple(answered_by)
        self.judge_input = messages if len(self.answered_by) >= 2 else None
        self.answered.set()

    async def judge_messages(self) -> Sequence[Any]:
        await self.answered.wait()
        if self.judge_input is None:
            raise NothingToJudge(self.answered_by)
        return self.judge_input


@dataclass(frozen=True)
class Seat:
    """A call's place in a set: the panel, and whether it is the judge."""

    panel: Panel
    judge: bool = False
