"""Reading litellm's replies: content, tool calls, usage and cost, whole or assembled from a stream."""

from __future__ import annotations

from typing import Any

import litellm

from .base import LLMResponse, ToolCall, Usage
from .stream import StreamAssembler, get, parse_arguments


def parse(raw: Any, model: str) -> LLMResponse:
    """A whole (non-streamed) litellm `ModelResponse` as our response."""
    choice = raw.choices[0]
    message = choice.message
    tool_calls = [
        ToolCall(id=tc.id or f"call_{i}", name=tc.function.name or "", input=parse_arguments(tc.function.arguments))
        for i, tc in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    usage = usage_of(getattr(raw, "usage", None))
    usage.cost_usd = cost(model, usage, raw)
    return LLMResponse(
        **usage.model_dump(),
        content=message.content or "",
        model=getattr(raw, "model", None) or model,
        stop_reason=choice.finish_reason or "",
        tool_calls=tool_calls,
        raw_response=raw,
    )


def from_stream(assembler: StreamAssembler, model: str) -> LLMResponse:
    """The response a finished stream adds up to."""
    usage = usage_of(assembler.usage)
    usage.cost_usd = cost(model, usage, None)
    return LLMResponse(
        **usage.model_dump(),
        content=assembler.text,
        model=assembler.model or model,
        stop_reason=assembler.finish_reason or ("tool_calls" if assembler.tool_calls else "stop"),
        tool_calls=assembler.tool_calls,
    )


def usage_of(usage: Any) -> Usage:
    """Token counts from litellm's usage object (or the dict a stream chunk carried)."""
    if not usage:
        return Usage()
    details = get(usage, "prompt_tokens_details")
    cached = (get(details, "cached_tokens") if details else None) or get(usage, "cache_read_input_tokens") or 0
    return Usage(
        input_tokens=int(get(usage, "prompt_tokens") or 0),
        output_tokens=int(get(usage, "completion_tokens") or 0),
        cached_tokens=int(cached),
    )


def cost(model: str, usage: Usage, raw: Any) -> float:
    """USD from litellm's cost table; 0.0 for a model it does not know (never raises).

    litellm has already priced a whole response (`_hidden_params["response_cost"]`,
    its documented place); pricing it again cost about a tenth of a call's CPU.
    """
    try:
        if raw is not None:
            known = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
            if known is not None:
                return float(known)
            return float(litellm.completion_cost(completion_response=raw, model=model) or 0.0)
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens
        )
        return float(prompt + completion)
    except Exception:  # noqa: BLE001 - unknown models raise; cost is best effort
        return 0.0
