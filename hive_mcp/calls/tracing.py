"""Tracing, as steps of the call: each step runs inside a span of its own (`hive_mcp.<step>`), in the trace the
request carried in, so a trace shows where a call's time went before the provider's own attempt spans.

A span that nothing records costs a few attribute reads (the OpenTelemetry API's no-op tracer).
"""

from __future__ import annotations

from .call import Call, Outcome
from .chain import Next, Step
from ..observe.tracing import step as span

__all__ = ["traced"]


def traced(step: Step, name: str) -> Step:
    """`step`, run inside the span `hive_mcp.<name>` (its caller and model as attributes)."""
    span_name = f"hive_mcp.{name}"

    async def in_span(call: Call, next: Next) -> Outcome:
        with span(span_name, caller=call.caller, model=call.ref.name if call.ref is not None else call.model):
            return await step(call, next)

    in_span.__wrapped__ = step  # type: ignore[attr-defined]  # the step itself, for who looks for it in a chain
    return in_span
