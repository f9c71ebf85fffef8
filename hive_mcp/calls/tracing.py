"""Tracing, as steps of the call: each step runs inside a span of its own (`hive_mcp.<step>`), in the trace the
request carried in, so a trace shows where a call's time went before the provider's own attempt spans.

While no tracer provider is installed, no span is opened at all.
"""

from __future__ import annotations

from collections.abc import Awaitable

from .call import Call, Outcome
from .chain import Next, Step
from ..observe.tracing import recording, step as span

__all__ = ["traced"]


def traced(step: Step, name: str) -> Step:
    """`step`, run inside the span `hive_mcp.<name>` (its caller and model as attributes). While no tracer provider
    is installed the step is called as it is, without a coroutine of ours around it: every suspension of a call
    passes through each coroutine the chain nests, and a span nobody records is worth none."""
    span_name = f"hive_mcp.{name}"

    async def in_span(call: Call, next: Next) -> Outcome:
        with span(span_name, caller=call.caller, model=call.ref.name if call.ref is not None else call.model):
            return await step(call, next)

    def run(call: Call, next: Next) -> Awaitable[Outcome]:
        return in_span(call, next) if recording() else step(call, next)

    run.__wrapped__ = step  # type: ignore[attr-defined]  # the step itself, for who looks for it in a chain
    run.span_name = span_name  # type: ignore[attr-defined]  # the span it opens, as the README's Traces table names it
    return run
