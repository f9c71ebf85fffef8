"""Spend on the tools' side: one `Meter` per tool call, around the provider call it makes.

The meter's `wrap` reserves the worst case right before the provider is asked
(after the conversation's thread is fitted, so the messages counted are the
ones sent) and turns a refusal into the error result that ends the call, with
no upstream request. `finish` runs once the tool's result exists, shielded from
cancellation: a response the provider gave is settled at its cost (with the
conversation id the result carries). A call that ended without one (cancelled,
failed, past its deadline) is charged what its `Delivery` says it owes
(`Spend.settle_short`), at the prices of the group whose deployment it was on
(a fallback's, once it fell back: the provider keeps `Delivery.answering`
up to date); owing nothing, its reservation is released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp_types import CallToolResult

from ..provider.base import Answering, LLMResponse, Message, Usage
from ..spend import BudgetRefusal, Spend, Ticket
from .model_list import ModelList
from .conversations import Call
from .errors import error_result
from .results import with_budget

__all__ = ["Delivery", "Meter", "with_spend_today"]


@dataclass
class Delivery:
    """What a call has cost so far, as its tool sees it: kept up to date while it runs, read if it ends early."""

    asked: bool = False
    """The provider was called (the call left the queue)."""
    text: list[str] = field(default_factory=list)
    """The text the model produced, relayed or not (a stream's `StreamState.produced`)."""
    failure: str | None = None
    """The category of the failure that ended the call; None while it runs, or when it was cancelled."""
    billed: Usage | None = None
    """The provider's usage of replies it gave and the call did not keep."""
    answering: Answering = field(default_factory=Answering)
    """The group and deployment the call's latest attempt went to, kept by the provider as it routes."""

    def failed(self, error_type: str, billed: Usage | None) -> None:
        self.failure, self.billed = error_type, billed

    @property
    def sent(self) -> bool:
        """Whether the upstream was working on the request when the call ended: it was asked, and not refused by
        a failure (a cancel or the deadline cut it while it ran)."""
        return self.asked and self.failure in (None, "timeout")


@dataclass
class Meter:
    spend: Spend
    caller: str
    keyword_default: int
    wait_s: float = 0.0
    """The longest a reserved call may wait before its deadline starts (the queue for a slot): added to its lease."""
    delivery: Delivery = field(default_factory=Delivery)
    ticket: Ticket | None = None
    response: LLMResponse | None = None

    def wrap(self, run: Call) -> Call:
        async def metered(messages: list[Message], kwargs: dict[str, Any]) -> LLMResponse | CallToolResult:
            try:
                tools = kwargs.get("tools")
                self.ticket = await self.spend.reserve(
                    self.caller, kwargs["model"], messages, system=kwargs.get("system") or "",
                    max_tokens=kwargs.get("max_tokens") or self.keyword_default,
                    deadline=float(kwargs["deadline"]) + self.wait_s,
                    tools=[t.to_openai() for t in tools] if tools else None,
                    response_format=kwargs.get("response_format"),
                )  # fmt: skip
            except BudgetRefusal as exc:
                return error_result(str(exc))
            kwargs = {**kwargs, "answering": self.delivery.answering}
            if self.ticket.refused:  # the fallbacks a budget refused: the provider does not take those hops
                kwargs["refused_groups"] = self.ticket.refused
            outcome = await run(messages, kwargs)
            if isinstance(outcome, LLMResponse):
                self.response = outcome
            return outcome

        return metered

    async def finish(self, result: CallToolResult | None) -> CallToolResult | None:
        """Settle or release; the result's facts with `budget_remaining_usd` when a budget applied."""
        ticket = self.ticket
        if ticket is None:
            return result
        structured = result.structured_content if result is not None else None
        cid = structured.get("conversation_id") if isinstance(structured, dict) else None
        cid = cid if isinstance(cid, str) else None
        with anyio.CancelScope(shield=True):
            if self.response is None:
                d = self.delivery
                await self.spend.settle_short(
                    ticket, sent=d.sent, text="".join(d.text), billed=d.billed, answering=d.answering
                )
                return result
            remaining = await self.spend.settle(ticket, self.response, cid)
        if remaining is not None and result is not None:
            with_budget(result, remaining)
        return result


def with_spend_today(listing: ModelList, spend: Spend, who: str | None) -> ModelList:
    """`listing` with each group's spend today (`who`'s only, unless None). Blocking: in a worker thread."""
    try:
        spent = spend.spent_today(who)
    except Exception:  # noqa: BLE001 - the listing stands without it
        return listing
    groups = [g.model_copy(update={"spent_today_usd": spent.get(g.name, 0.0)}) for g in listing.groups]
    return listing.model_copy(update={"groups": groups})
