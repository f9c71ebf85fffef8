"""Spend on the tools' side: one `Meter` per tool call, around the provider call it makes.

The meter's `wrap` reserves the worst case right before the provider is asked
(after the conversation's thread is fitted, so the messages counted are the
ones sent) and turns a refusal into the error result that ends the call, with
no upstream request. `finish` runs once the tool's result exists, shielded from
cancellation: a response the provider gave is settled at its cost (with the
conversation id the result carries); anything else releases the reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from mcp_types import CallToolResult

from ..provider.base import LLMResponse, Message
from ..spend import BudgetRefusal, Spend, Ticket
from ..spend.usage import spent_today
from .catalogue import ModelList
from .conversations import Call
from .errors import error_result

__all__ = ["Meter", "with_spend_today"]


@dataclass
class Meter:
    spend: Spend
    caller: str
    keyword_default: int
    wait_s: float = 0.0
    """The longest a reserved call may wait before its deadline starts (the queue for a slot): added to its lease."""
    ticket: Ticket | None = None
    response: LLMResponse | None = None

    def wrap(self, run: Call) -> Call:
        async def metered(messages: list[Message], kwargs: dict[str, Any]) -> LLMResponse | CallToolResult:
            try:
                self.ticket = await self.spend.reserve(
                    self.caller, kwargs["model"], messages, system=kwargs.get("system") or "",
                    max_tokens=kwargs.get("max_tokens") or self.keyword_default,
                    deadline=float(kwargs["deadline"]) + self.wait_s,
                )  # fmt: skip
            except BudgetRefusal as exc:
                return error_result(str(exc))
            outcome = await run(messages, kwargs)
            if isinstance(outcome, LLMResponse):
                self.response = outcome
            return outcome

        return metered

    async def finish(self, result: CallToolResult | None) -> CallToolResult | None:
        """Settle or release; the result with `budget_remaining_usd` when a budget applied."""
        ticket = self.ticket
        if ticket is None:
            return result
        with anyio.CancelScope(shield=True):
            if self.response is None:
                await self.spend.release(ticket)
                return result
            structured = result.structured_content if result is not None else None
            cid = structured.get("conversation_id") if isinstance(structured, dict) else None
            remaining = await self.spend.settle(ticket, self.response, cid if isinstance(cid, str) else None)
        if remaining is not None and isinstance(structured, dict) and result is not None and not result.is_error:
            structured["budget_remaining_usd"] = remaining
        return result


def with_spend_today(listing: ModelList, spend: Spend, who: str | None) -> ModelList:
    """`listing` with each group's spend today (`who`'s only, unless None). Blocking: in a worker thread."""
    try:
        spent = spent_today(spend.backend, spend.clock(), who)
    except Exception:  # noqa: BLE001 - the listing stands without it
        return listing
    groups = [g.model_copy(update={"spent_today_usd": spent.get(g.name, 0.0)}) for g in listing.groups]
    return listing.model_copy(update={"groups": groups})
