"""The conversation step: what a continued call sends, and what a call stores.

A call without a thread goes to the model as it is; once it succeeds, its system
prompt, messages and answer become a new conversation, whose id the outcome
carries (drawn before the call, so a recovered call's dump names it). A call
with one is served under that conversation's lock (one call at a time per
conversation, with the queue timeout and cancellation of the in-flight limit; a
fork takes no lock, since its source does not change), in this process and then
across every instance on the store (`writer`): the stored thread, then the
call's new messages, go to the model, and once it succeeds the new messages and
the answer are appended in one compare-and-swap. A failed call stores nothing. A
lookup that fails (malformed, unknown, expired, or the store down) is a refusal
before any upstream request; an answer that could not be stored is still returned,
with one line naming the store (`not_stored`) in place of a conversation id. The
call's deadline bounds its waits for another process's lock on a SQLite store.

Tool calls and tool results travel as the structured messages they are, never
flattened, so the next model (any model: the thread is model-independent) sees
what the last one saw. When the thread and the new messages would pass the
target model's input window, the oldest whole turns after the system prompt are
left out of the request (not out of the store), and the outcome says how many.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import anyio

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
from ..provider.base import LLMProvider, LLMResponse, Message
from ..sqlite import waiting_until
from .call import Call, Outcome
from .chain import Next

__all__ = ["Conversations", "answer_message", "fit"]

logger = logging.getLogger("hive_mcp")


def answer_message(r: LLMResponse) -> Message:
    """The answer as the next model receives it: content and tool calls, in OpenAI form."""
    message: Message = {"role": "assistant", "content": r.content or (None if r.tool_calls else "")}
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
    provider: LLMProvider, view: ThreadView, new: list[Message], *, model: str, window: int | None, system: str,
    max_tokens: int | None,
) -> tuple[list[Message], int]:  # fmt: skip
    """The messages to send (thread, then `new`) and how many of the oldest turns were left out to fit.

    `system` (when given) replaces the thread's leading system messages. The
    room is the model's input `window` less `max_tokens` (when that leaves room);
    with the window or the count unknown, everything is sent.
    """

    def build(omit: int) -> list[Message]:
        history = view.chat_messages(omit_turns=omit)
        return history[_head(history) :] + new if system else history + new

    full = build(0)
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
class Conversations:
    """The conversation step, bound to one server's store, provider (token counts) and locks."""

    store: ConversationStore
    provider: LLMProvider
    locks: ConversationLocks
    on_change: Callable[[str, str], None] | None = None
    """Told of each conversation stored to: its id and owner (the change notifications)."""
    dumps: DumpStore | None = None
    """Where failure dumps are: a recovered call's dump names the conversation its outcome returns."""

    async def __call__(self, call: Call, next: Next) -> Outcome:
        if call.thread is None and not call.keep:
            return await next(call)
        with waiting_until(time.monotonic() + call.deadline_s):  # SQLite's waits for a lock: the call's deadline
            return await self._serve(call, next)

    @staticmethod
    async def _next(call: Call, next: Next) -> Outcome:
        """The steps after this one, whose own stores keep their busy timeouts."""
        with waiting_until(None):
            return await next(call)

    async def _serve(self, call: Call, next: Next) -> Outcome:
        if call.thread is None:
            new = new_id()
            started = time.monotonic()
            outcome = await self._next(replace(call, conversation_id=new, new_conversation=True), next)
            if outcome.response is None:
                return outcome
            system = [{"role": "system", "content": call.system}] if call.system else []
            kept = await self._keep(None, call, [*system, *call.messages], outcome.response, started, new=new)
            return await self._kept(outcome, new, kept, 0)
        async with AsyncExitStack() as stack:
            cid = check_id(call.thread.id)
            if not call.thread.fork:
                async with call.observer.waiting():
                    began = time.monotonic()
                    await stack.enter_async_context(self.locks.hold(cid))
                    # Then across instances: one queue timeout covers both waits.
                    limit = self.locks.timeout_s
                    left = None if limit is None else max(0.0, limit - (time.monotonic() - began))
                    try:
                        await stack.enter_async_context(self.store.writer(cid, timeout_s=left))
                    except ConversationBusy:
                        raise ConversationBusy(cid, limit) from None  # the whole wait, both queues
            view = await self.store.get(cid, owner=call.caller)
            if not call.thread.fork:
                check_room(view.thread, self.store.limits, 1, 0)
            await self.provider.ready()  # fit counts tokens in a worker thread: not one held by a load
            ref = call.ref
            assert ref is not None, "admission resolves the model first"
            send, omitted = await anyio.to_thread.run_sync(
                lambda: fit(
                    self.provider, view, list(call.messages), model=ref.name, window=ref.window, system=call.system,
                    max_tokens=call.max_tokens,
                ),  # fmt: skip
                abandon_on_cancel=True,  # a cancelled call does not wait for a count nobody will read
            )
            new = new_id() if call.thread.fork else None  # a fork's id, drawn before the call as for a new thread
            started = time.monotonic()
            sent = replace(call, send=tuple(send), conversation_id=new or cid, new_conversation=new is not None)
            outcome = await self._next(sent, next)
            if outcome.response is None:
                return outcome
            kept = await self._keep(view.thread, call, list(call.messages), outcome.response, started, new=new)
            return await self._kept(outcome, new or cid, kept, omitted)
        raise AssertionError("unreachable")  # pragma: no cover - the stack never swallows

    async def _kept(
        self, outcome: Outcome, named: str, kept: str | ConversationError | StoreError, omitted: int
    ) -> Outcome:
        """The outcome with the conversation its answer went to; a recovered call's dump, written naming `named`
        before the answer was stored, made to name `kept` (the fork an append that lost the race became, or none
        when the answer could not be stored: then the outcome says why, in one line naming the store)."""
        failed = kept if isinstance(kept, Exception) else None
        cid = None if isinstance(kept, Exception) else kept
        dump_id = outcome.dump_id
        if dump_id is not None and cid != named and self.dumps is not None:
            await anyio.to_thread.run_sync(self.dumps.set_conversation, dump_id, cid)
        not_stored = None if failed is None else f"the answer was not stored: {failed}"
        return replace(outcome, conversation_id=cid, omitted_turns=omitted, not_stored=not_stored)

    async def _keep(
        self, base: Thread | None, call: Call, messages: list[Message], r: LLMResponse, started: float, *,
        new: str | None = None,
    ) -> str | ConversationError | StoreError:  # fmt: skip
        """Store the finished call: a new thread, a fork, or an append to `base`. The id, or the failure.

        `new` is the id of the thread the call starts (with `base`: a fork of it), drawn before the call.

        An append that lost a race with another process (the compare-and-swap)
        becomes a fork from the point this call saw, so the answer is kept and
        the other writer's turn too; nothing interleaves.
        """
        owner = call.caller
        usage = Usage(
            input_tokens=r.input_tokens, output_tokens=r.output_tokens, cached_tokens=r.cached_tokens,
            reasoning_tokens=r.reasoning_tokens, cost_usd=None if r.unpriced else r.cost_usd,
        )  # fmt: skip
        # The model as the call named it (its group, with a config), as the spend ledger and the dumps name
        # it: the upstream's own name for it is in the result, and differs from provider to provider.
        elapsed_ms = (time.monotonic() - started) * 1000
        turn = NewTurn(model=r.model_group or call.model_name, usage=usage, duration_ms=elapsed_ms)
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
            return exc
        if self.on_change is not None:
            self.on_change(thread.id, owner)
        return thread.id

    async def _fork(
        self, base: Thread, owner: str, stored: list[Message], turn: NewTurn, thread_id: str | None = None
    ) -> Thread:
        return await self.store.fork(base.id, owner=owner, at=base.tip, messages=stored, turn=turn, thread_id=thread_id)
