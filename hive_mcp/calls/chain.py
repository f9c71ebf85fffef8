"""The chain: a call's steps in order, each `async (call, next) -> Outcome`, the last one the provider.

A step may refuse the call (raise a `Refusal`), amend it for the steps after it
(`dataclasses.replace`), wrap them (a lock, a slot, a span), amend their outcome
on its way back, or ask to run once the outcome is final (`Progress.afters`:
settlement, which needs the conversation id a step further out decides). What a
call does is read here, in the order of `Chain.steps`, not across the callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import anyio

from .call import Call, Outcome

__all__ = ["Chain", "Next", "Step"]

Next = Callable[[Call], Awaitable[Outcome]]
"""The rest of the chain."""
Step = Callable[[Call, Next], Awaitable[Outcome]]
"""One link: the call, and the rest of the chain to pass it on to (or not)."""


def _link(step: Step, rest: Next, call: Call) -> Awaitable[Outcome]:
    return step(call, rest)


@dataclass(frozen=True)
class Chain:
    """The steps of a call, outermost first, ending in `last` (which sends it)."""

    steps: Sequence[Step]
    last: Next

    def __post_init__(self) -> None:
        first = self.last
        for step in reversed(self.steps):
            first = partial(_link, step, first)
        object.__setattr__(self, "_first", first)

    async def run(self, call: Call) -> Outcome:
        """The call's outcome, once every step that asked to has seen it final; a refusal is raised."""
        afters = call.progress.afters
        try:
            outcome: Outcome | None = await self._first(call)  # type: ignore[attr-defined]
        except BaseException:
            with anyio.CancelScope(shield=True):
                for after in afters:
                    await after(None)
            raise
        with anyio.CancelScope(shield=True):
            for after in afters:
                outcome = await after(outcome)
        assert outcome is not None
        return outcome
