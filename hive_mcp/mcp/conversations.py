"""Conversations on the tools' side: who is calling, what a continued call sends, and what it stores.

A call without `conversation_id` goes to the model as it is; once it succeeds,
its system prompt, messages and answer become a new conversation, whose id the
result carries. A call with one is served under that conversation's lock (one
call at a time per conversation, with the queue timeout and cancellation of the
in-flight limit; a fork takes no lock, since its source does not change), in
this process and then across every instance on the store (`writer`): the
stored thread, then the call's new messages, go to the model, and once it
succeeds the new messages and the answer are appended in one compare-and-swap.
A failed call stores nothing. A lookup that fails (malformed, unknown, expired,
or the store down) is a one-line error before any upstream request.

Tool calls and tool results travel as the structured messages they are, never
flattened, so the next model (any model: the thread is model-independent) sees
what the last one saw.

When the thread and the new messages would pass the target model's input
window (the provider's token count and model information), the oldest whole
turns after the system prompt are left out of the request (not out of the
store), and the result says how many (`omitted_turns`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
from mcp_types import CallToolResult

from mcp.server.context import ServerRequestContext

from ..conversations import (
    ConversationBusy,
    ConversationConflict,
    ConversationError,
    ConversationLocks,
    ConversationStore,
    NewTurn,
    StoreError,
    Thread,
    ThreadView,
    Usage,
    check_id,
    new_id,
)
from ..conversations.records import check_room
from ..dumps import DumpStore
from ..limits import LEASE_MARGIN_S
from ..provider.base import LLMProvider, LLMResponse, Message
from ..tokens import CALLER_STATE_KEY, LOCAL_CALLER
from .args import CompleteArgs
from .constants import logger
from .errors import error_result
from .results import CompletionResult, completion_result

__all__ = ["Call", "ConversationService", "answer_message", "caller", "fit"]

Call = Callable[[list[Message], dict[str, Any]], Awaitable[LLMResponse | CallToolResult]]
"""One provider call (messages, keyword fields): the response, or the error result that ends the tool call."""


def caller(ctx: ServerRequestContext[Any, Any]) -> str:
    """Who is calling: the name the HTTP guard derived from the bearer token, else `LOCAL_CALLER`."""
    scope = getattr(ctx.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    name = state.get(CALLER_STATE_KEY) if isinstance(state, dict) else None
    return name if isinstance(name, str) and name else LOCAL_CALLER


def answer_message(r: LLMResponse) -> dict[str, Any]:
    """The answer as the next model receives it: content and tool calls, in OpenAI form."""
    message: dict[str, Any] = {"role": "assistant", "content": r.content or (None if r.tool_calls else "")}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input)}}
            for c in r.tool_calls
        ]
    return message


def _head(messages: list[Message]) -> int:
    head = 0
    while head < len(messages) and messages[head].get("role") in ("system", "developer"):
        head += 1
    return head


def _plain_size(messages: list[Message]) -> int | None:
    """UTF-8 bytes of `messages` as JSON when every content is text: at least their token count; else None.

    Every token of a byte-level tokenizer is at least one byte, and a message's
    framing tokens are fewer than its JSON punctuation, so a thread whose bytes
    fit the window fits without being counted.
    """
    if any(not isinstance(m.get("content"), (str, type(None))) for m in messages):
        return None
    return len(json.dumps(messages, ensure_ascii=False).encode())


def fit(
    provider: LLMProvider, view: ThreadView, new: list[Message], *, model: str, system: str, max_tokens: int | None
) -> tuple[list[Message], int]:
    """The messages to send (thread, then `new`) and how many of the oldest turns were left out to fit.

    `system` (when given) replaces the thread's leading system messages. The
    room is the model's input window less `max_tokens` (when that leaves room);
    with the window or the count unknown, everything is sent.
    """

    def build(omit: int) -> list[Message]:
        history = view.chat_messages(omit_turns=omit)
        return history[_head(history) :] + new if system else history + new

    full = build(0)
    window = provider.max_input_tokens(model)
    if window is None:
        return full, 0
    room = window - max_tokens if max_tokens is not None and max_tokens < window else window
    framed = [{"role": "system", "content": system}] if system else []
    plain = _plain_size(framed + full)
    if plain is not None and plain <= room:
        return full, 0

    def fits(omit: int) -> bool | None:
        count = provider.count_tokens(framed + build(omit), model)
        return None if count is None else count <= room

    first = fits(0)
    if first is None or first:
        return full, 0
    lo, hi = 1, view.turn_count()  # the fewest turns to leave out: counts fall as more are left out
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return build(hi), hi


@dataclass
class ConversationService:
    """The conversation store as the tools use it, bound to one server's provider and locks."""

    store: ConversationStore
    provider: LLMProvider
    locks: ConversationLocks
    on_change: Callable[[str, str], None] | None = None
    """Told of each conversation stored to: its id and owner."""
    """Told the id of every conversation created or advanced (the change notifications)."""
    dumps: DumpStore | None = None
    """Where the provider writes failure dumps: a recovered call's dump names the conversation its result returns."""

    async def run(
        self,
        ctx: ServerRequestContext[Any, Any],
        args: CompleteArgs,
        messages: list[Message],
        kwargs: dict[str, Any],
        call: Call,
        waiting: Callable[[], AbstractAsyncContextManager[Any]],
        default_max_tokens: int,
    ) -> CallToolResult:
        """One tool call: new (stored once it succeeds) or continued/forked; `waiting` wraps the queue wait."""
        owner = caller(ctx)
        if args.conversation_id is None:
            # The id is drawn before the call, so its failure dump names the conversation its result returns.
            new = new_id()
            started = time.monotonic()
            outcome = await call(messages, {**kwargs, "conversation_id": new, "new_conversation": True})
            if isinstance(outcome, CallToolResult):
                return outcome
            system = [{"role": "system", "content": args.system}] if args.system else []
            cid = await self._keep(None, owner, [*system, *messages], outcome, started, kwargs["model"], new=new)
            await self._dump_names(outcome, new, cid)
            return self._result(outcome, cid, 0)
        async with AsyncExitStack() as stack:
            try:
                cid = check_id(args.conversation_id)
                if not args.fork:
                    async with waiting():
                        began = time.monotonic()
                        await stack.enter_async_context(self.locks.hold(cid))
                        # Then across instances: one queue timeout covers both waits.
                        limit = self.locks.timeout_s
                        left = None if limit is None else max(0.0, limit - (time.monotonic() - began))
                        lease = float(kwargs["deadline"]) + LEASE_MARGIN_S
                        try:
                            await stack.enter_async_context(self.store.writer(cid, lease_s=lease, timeout_s=left))
                        except ConversationBusy:
                            raise ConversationBusy(cid, limit) from None  # the whole wait, both queues
                view = await self.store.get(cid, owner=owner)
                if not args.fork:
                    check_room(view.thread, self.store.limits, 1, 0)
            except (ConversationError, StoreError) as exc:
                return error_result(str(exc))
            model = kwargs["model"]
            max_tokens = kwargs.get("max_tokens", default_max_tokens)
            await self.provider.ready()  # fit counts tokens in a worker thread: not one held by a load
            send, omitted = await anyio.to_thread.run_sync(
                lambda: fit(
                    self.provider, view, messages, model=model, system=args.system or "", max_tokens=max_tokens
                ),
                abandon_on_cancel=True,  # a cancelled call does not wait for a count nobody will read
            )
            new = new_id() if args.fork else None  # a fork's id, drawn before the call as for a new thread
            started = time.monotonic()
            outcome = await call(send, {**kwargs, "conversation_id": new or cid, "new_conversation": new is not None})
            if isinstance(outcome, CallToolResult):
                return outcome
            kept = await self._keep(view.thread, owner, messages, outcome, started, model, new=new)
            await self._dump_names(outcome, new or cid, kept)
            return self._result(outcome, kept, omitted)
        raise AssertionError("unreachable")  # pragma: no cover - the stack never swallows

    async def _dump_names(self, r: LLMResponse, named: str, kept: str | None) -> None:
        """Make a recovered call's dump, written naming `named` before the answer was stored, name `kept`:
        the fork an append that lost the race became, or none when the answer could not be stored."""
        if r.dump_id is not None and kept != named and self.dumps is not None:
            await anyio.to_thread.run_sync(self.dumps.set_conversation, r.dump_id, kept)

    async def _keep(
        self,
        base: Thread | None,
        owner: str,
        messages: list[Message],
        r: LLMResponse,
        started: float,
        model: str,
        *,
        new: str | None = None,
    ) -> str | None:
        """Store the finished call: a new thread, a fork, or an append to `base`. The id, or None on failure.

        `new` is the id of the thread the call starts (with `base`: a fork of it), drawn before the call.

        An append that lost a race with another process (the compare-and-swap)
        becomes a fork from the point this call saw, so the answer is kept and
        the other writer's turn too; nothing interleaves.
        """
        usage = Usage(
            input_tokens=r.input_tokens, output_tokens=r.output_tokens, cached_tokens=r.cached_tokens,
            reasoning_tokens=r.reasoning_tokens, cost_usd=None if r.unpriced else r.cost_usd,
        )  # fmt: skip
        # The model as the call named it (its group, with a config), as the spend ledger and the dumps name
        # it: the upstream's own name for it is in the result, and differs from provider to provider.
        turn = NewTurn(model=r.model_group or model, usage=usage, duration_ms=(time.monotonic() - started) * 1000)
        stored = [*messages, answer_message(r)]
        try:
            if base is None:
                thread = await self.store.create(owner=owner, messages=stored, turn=turn, thread_id=new)
            elif new is not None:
                thread = await self._fork(base, owner, stored, turn, new)
            else:
                try:
                    thread = await self.store.append(
                        base.id, stored, turn, expected_tip=base.tip, owner=owner, base=base
                    )
                except ConversationConflict:
                    logger.warning("conversation %s moved on meanwhile; this answer starts a fork of it", base.id)
                    thread = await self._fork(base, owner, stored, turn)
        except (ConversationError, StoreError) as exc:
            if not getattr(exc, "told", False):  # a state store outage is told once, not at every call
                logger.warning("the answer was not stored, so the result has no conversation_id: %s", exc)
            return None
        if self.on_change is not None:
            self.on_change(thread.id, owner)
        return thread.id

    async def _fork(
        self, base: Thread, owner: str, stored: list[Message], turn: NewTurn, thread_id: str | None = None
    ) -> Thread:
        return await self.store.fork(base.id, owner=owner, at=base.tip, messages=stored, turn=turn, thread_id=thread_id)

    @staticmethod
    def _result(r: LLMResponse, conversation_id: str | None, omitted: int) -> CallToolResult:
        result = CompletionResult.from_response(r)
        return completion_result(result.model_copy(update={"conversation_id": conversation_id, "omitted_turns": omitted}))
