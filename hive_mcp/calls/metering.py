"""The metering step: every call reserves its worst case before the provider is asked, and is settled once
its outcome is final.

The reservation is made after the conversation's thread is fitted, so the
messages counted are the ones sent; a budget's refusal ends the call with no
upstream request. Settlement waits for the outcome to be final (`Progress.afters`,
shielded from cancellation) because the ledger row names the conversation the
answer was stored to, which the conversation step decides after this one
returns. A response is settled at its cost. A call that ended without one
(cancelled, failed, past its deadline) is charged what its `Progress` says it
owes (`Spend.settle_short`), at the prices of the group whose deployment it was
on (a fallback's, once it fell back); owing nothing, its reservation is released.
A failed call's outcome says what it was charged (`Outcome.charged`). Nothing
relayed is free.

The reservation covers one attempt. A reply the provider billed and the call
did not keep (an empty one, retried) is owed on top of the next attempt, so a
call under a budget gives the provider a `cover` hook: before such a retry,
what was billed is held too (`Spend.extend`), or the budget refuses it and the
retry is not sent (the call then fails, charged what was billed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from ..spend import Spend
from .call import Call, Outcome
from .chain import Next

__all__ = ["Metering"]


@dataclass
class Metering:
    spend: Spend
    wait_s: float = 0.0
    """The longest a reserved call may wait before its deadline starts (the queue for a slot): added to its lease."""

    async def __call__(self, call: Call, next: Next) -> Outcome:
        assert call.ref is not None, "admission resolves the model first"
        tools = call.params.tools
        # A call that first waits on others (a judge) holds through their queue and deadline too.
        waits = call.before_s + self.wait_s if call.before_s else 0.0
        ticket = await self.spend.reserve(
            call.caller, call.ref, call.outgoing, system=call.system, max_tokens=call.max_tokens,
            deadline=call.deadline_s + self.wait_s + waits, tools=[t.to_openai() for t in tools] if tools else None,
            response_format=call.params.response_format, keys=call.scope_keys,
        )  # fmt: skip
        progress = call.progress

        async def settle(outcome: Outcome | None) -> Outcome | None:
            if outcome is None or outcome.response is None:
                failure = progress.failure
                # Cancelled, the replies billed so far are owed all the same (a failure carries them itself).
                billed = failure.billed if failure is not None else progress.answering.billed
                charge = await self.spend.settle_short(
                    ticket, sent=progress.sent, text="".join(progress.text), billed=billed,
                    answering=progress.answering,
                )  # fmt: skip
                if outcome is None:
                    return None
                return replace(outcome, charged=charge)
            remaining = await self.spend.settle(ticket, outcome.response, outcome.conversation_id)
            return replace(outcome, budget_remaining_usd=remaining)

        progress.afters.append(settle)
        # The fallbacks a budget refused: the provider does not take those hops. Held against a budget (`left`),
        # a retry after a billed reply is held first; without one, nothing was held and nothing needs covering.
        cover = functools.partial(self.spend.extend, ticket) if ticket.left else None
        if ticket.refused or cover is not None:
            call = replace(call, refused_groups=ticket.refused or call.refused_groups, cover=cover)
        return await next(call)
