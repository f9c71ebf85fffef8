"""The last steps: a slot among the calls in flight, then the provider, asked with a `CompletionRequest`
built from the call.

While a call waits for its slot and on the model, its observer is told it is
waiting (heartbeats, over MCP); a stream's events are gathered into a
`StreamState` the observer relays as they arrive. A provider failure is an
outcome, not an exception: the steps further out account for it (metering
charges what it produced), and the transport shows its one line.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import anyio

from ..call_context import labelled
from ..limits import Limits
from ..observe import metrics
from ..provider.base import CompletionRequest, LLMProvider, ProviderError
from .call import Call, Failure, Outcome
from .chain import Next
from .stream import StreamState, read_stream

__all__ = ["Send", "Slot", "request_of"]

NO_RESULT = "internal error: the provider's stream ended without a result"


@dataclass
class Slot:
    """Hold one of the upstream slots (and one of the caller's share) while the rest of the chain runs."""

    limits: Limits

    async def __call__(self, call: Call, next: Next) -> Outcome:
        async with call.observer.waiting():
            queued = time.monotonic()
            async with self.limits.slot(call.caller):
                metrics.queue_wait(time.monotonic() - queued)
                return await next(call)


def request_of(call: Call) -> CompletionRequest:
    """What the provider is asked: the call as admitted, fitted and metered."""
    p = call.params
    return CompletionRequest(
        messages=call.outgoing, system=call.system, tools=list(p.tools) if p.tools else None,
        max_tokens=call.max_tokens, temperature=p.temperature, response_format=p.response_format,
        json_mode=p.json_mode, model=call.model_name, max_retries=p.max_retries, deadline=call.deadline_s,
        refused_groups=call.refused_groups, answering=call.progress.answering, cover=call.cover,
    )  # fmt: skip


@dataclass
class Send:
    """Ask the provider; its dumps name the call's caller and conversation."""

    provider: LLMProvider

    async def __call__(self, call: Call) -> Outcome:
        progress = call.progress
        progress.asked = True
        request = request_of(call)
        with labelled(call.caller, call.conversation_id, call.new_conversation):
            if not call.stream:
                try:
                    return Outcome(response=await self.provider.acomplete(request), ref=call.ref)
                except ProviderError as err:
                    progress.failure = Failure(
                        str(err), err.error_type, err.dump_id, err.billed, err.attempts, err.upstream_wait_s
                    )
                    return Outcome(failure=progress.failure, ref=call.ref)
            state = StreamState(reasoning=call.params.include_reasoning, produced=progress.text, tag=call.tag)
            try:
                async with call.observer.relaying(state) as nudge, anyio.create_task_group() as reading:
                    # In a task of its own, each chunk wakes the reader's few frames, not the whole chain of steps
                    # and middleware this call's task waits in.
                    reading.start_soon(read_stream, self.provider.stream(request), state, nudge)
            except asyncio.CancelledError:
                # The reader had the whole reply before this task woke to take it: a cancel delivered in between
                # (a task cut as the grace period ends) does not take the reply's place.
                if state.finish is None or state.error is not None or not _withdraw_cancel():
                    raise
        if state.error is not None:
            e = state.error
            progress.failure = Failure(e.error, e.error_type, e.dump_id, e.billed, e.attempts)
            return Outcome(failure=progress.failure, ref=call.ref)
        if state.finish is None:
            return Outcome(failure=Failure(NO_RESULT, "internal"), ref=call.ref)
        return Outcome(response=state.finish.response, ref=call.ref)


def _withdraw_cancel() -> bool:
    """Take back the cancellation this task was just delivered, when it is the only one asked of it and no cancel
    scope around it is cancelled; whether it was taken back. A cancelled scope (a call the client cancelled, an
    HTTP request ended at the end of the grace period) would deliver it again at the next await: it stands."""
    task = asyncio.current_task()
    if task is None or task.cancelling() != 1 or anyio.current_effective_deadline() == -math.inf:
        return False
    task.uncancel()
    return True
