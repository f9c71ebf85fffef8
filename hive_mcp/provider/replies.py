"""Reading litellm's replies: content, tool calls, usage and cost, whole or assembled from a stream."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from ..text import well_formed
from .base import LLMResponse, ToolCall, Usage
from .echoes import NO_SECRETS, Scrubber
from .errors import ContentFiltered, filter_categories
from .offline import litellm
from .stream import StreamAssembler, get, output_limit, parse_arguments, refused, thinking_text


def parse(raw: Any, model: str, echoes: Scrubber = NO_SECRETS) -> LLMResponse:
    """A whole (non-streamed) litellm `ModelResponse` as our response.

    A refusal is an answer: its text is the content and `stop_reason` is "refusal". Text is made valid
    Unicode (`text.well_formed`) and holds none of `echoes`' secrets.
    A reply its provider's content filter stopped raises `ContentFiltered`.
    """
    choice = raw.choices[0]
    message = choice.message
    scrub = echoes.whole
    tool_calls = [
        ToolCall(
            id=tc.id or f"call_{i}", name=scrub(tc.function.name or ""), input=parse_arguments(_scrubbed(tc, scrub))
        )
        for i, tc in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    refusal = getattr(message, "refusal", None)
    content = message.content if isinstance(message.content, str) else ""
    stop_reason = choice.finish_reason or ""
    usage = usage_of(getattr(raw, "usage", None))
    stated = stated_cost(getattr(raw, "_hidden_params", None), getattr(raw, "usage", None))
    usage.cost_usd = stated if stated is not None else cost(model, usage, raw)
    if (isinstance(refusal, str) and refusal) or refused(message):
        content = refusal if isinstance(refusal, str) and refusal else content
        stop_reason = "refusal"
    elif stop_reason == "content_filter":
        categories = filter_categories(_filter_text(get(choice, "provider_specific_fields"), raw))
        raise ContentFiltered(categories, usage, stated=stated is not None)
    reasoning = getattr(message, "reasoning_content", None) or thinking_text(getattr(message, "thinking_blocks", None))
    return LLMResponse(
        **usage.model_dump(),
        content=scrub(well_formed(content or "")),
        model=getattr(raw, "model", None) or model,
        stop_reason=stop_reason,
        tool_calls=tool_calls,
        reasoning=scrub(well_formed(reasoning)) if isinstance(reasoning, str) and reasoning else None,
        raw_response=raw,
        cost_stated=stated is not None,
    )


def _scrubbed(tool_call: Any, scrub: Callable[[str], str]) -> Any:
    arguments = tool_call.function.arguments
    return scrub(arguments) if isinstance(arguments, str) else arguments


def from_stream(assembler: StreamAssembler, model: str) -> LLMResponse:
    """The response a finished stream adds up to; raises `ContentFiltered` as `parse` does."""
    tool_calls = assembler.tool_calls  # built once: each read parses and scrubs every call's arguments
    stop_reason = assembler.finish_reason or ("tool_calls" if tool_calls else "stop")
    reported = assembler.reported_usage
    usage = usage_of(reported)
    stated = stated_cost(assembler.hidden, assembler.upstream_usage)
    priced = get(reported, "cost") if reported else None  # litellm's own figure, or the upstream's
    if stated is not None:
        usage.cost_usd = stated
    elif isinstance(priced, (int, float)) and priced > 0:
        usage.cost_usd = float(priced)
    else:
        usage.cost_usd = cost(model, usage, None, reported)
    if assembler.refusal:
        stop_reason = "refusal"
    elif stop_reason == "content_filter":
        raise ContentFiltered(
            filter_categories(_filter_text(assembler.filter_results, None)), usage, assembler.estimated,
            stated=stated is not None,
        )
    return LLMResponse(
        **usage.model_dump(),
        content=assembler.text,
        model=assembler.answered_by or model,
        stop_reason=stop_reason,
        tool_calls=tool_calls,
        reasoning=assembler.reasoning,
        estimated=assembler.estimated,
        cost_stated=stated is not None,
    )


def billed_usage(raw: Any, hidden: Any = None, model: str | None = None) -> tuple[Usage, bool] | None:
    """What the upstream billed for a reply the call could not keep, by the usage it sent (`raw`: as it sent it,
    a dict or litellm's object): those tokens, at the cost it stated (`stated_cost`, `hidden`: litellm's hidden
    params), else at litellm's price for `model` (None: no price; a settlement prices it); and whether the cost
    was stated. None when it sent no usage, or none with a token in it."""
    usage = usage_of(raw)
    if not (usage.input_tokens or usage.output_tokens):
        return None
    stated = stated_cost(hidden, raw)
    if stated is not None:
        usage.cost_usd = stated
    elif model is not None:
        usage.cost_usd = cost(model, usage, None, raw)
    return usage, stated is not None


def cut_to(reply: LLMResponse, model: str, max_tokens: int) -> None:
    """A whole reply from an upstream that ignored `max_tokens` (its text past `output_limit` by litellm's count
    for `model`): the text cut to `max_tokens` tokens, `stop_reason` `length`, its output counted as
    `max_tokens` (`estimated`), so it is charged within its reservation. Its own text decides, not its usage
    (which may count thought tokens beside it). A token is at least one byte: a short reply is not counted."""
    limit = output_limit(max_tokens)
    if len(reply.content.encode()) <= limit:
        return
    try:
        tokens = list(litellm.encode(model=model, text=reply.content))
        if len(tokens) <= limit:
            return
        reply.content = litellm.decode(model=model, tokens=tokens[:max_tokens])
    except Exception:  # noqa: BLE001 - no tokenizer: the reply stands as it came
        return
    reply.stop_reason = "length"
    reply.output_tokens = max_tokens
    reply.cost_usd, reply.cost_stated = cost(model, reply, None), False  # a stated cost covered the cut text
    reply.estimated = True


def _filter_text(choice_fields: Any, raw: Any) -> str:
    """Where a reply lists its filter results (Azure: per choice, and `prompt_filter_results`), as text."""
    parts = [choice_fields, getattr(raw, "prompt_filter_results", None) if raw is not None else None]
    return json.dumps([p for p in parts if p], default=str)


def usage_of(usage: Any) -> Usage:
    """Token counts from litellm's usage object (or the dict a stream chunk carried)."""
    if not usage:
        return Usage()
    details = get(usage, "prompt_tokens_details")
    cached = (get(details, "cached_tokens") if details else None) or get(usage, "cache_read_input_tokens") or 0
    completion_details = get(usage, "completion_tokens_details")
    reasoning = get(completion_details, "reasoning_tokens") if completion_details else None
    return Usage(
        input_tokens=int(get(usage, "prompt_tokens") or 0),
        output_tokens=int(get(usage, "completion_tokens") or 0),
        cached_tokens=int(cached),
        reasoning_tokens=int(reasoning or 0),
    )


STATED_COST_HEADER = "llm_provider-x-litellm-response-cost"
"""Where litellm keeps a reply's `x-litellm-response-cost` header (it keeps each response header, prefixed
`llm_provider-`, under `_hidden_params["additional_headers"]`): a LiteLLM proxy's figure for the reply; litellm's
OpenRouter route puts a whole reply's `usage.cost` there too."""


def stated_cost(hidden: Any, usage: Any) -> float | None:
    """What the upstream said the reply cost, in USD: the `x-litellm-response-cost` header (`hidden`: litellm's
    hidden params), else the upstream's own `usage.cost` (OpenRouter's, any OpenAI-compatible upstream's; `usage`
    as the upstream sent it, not litellm's, which holds litellm's own figure). It is what the caller is billed.
    None when it said nothing, or 0 (no price: README "Zero is not a price")."""
    headers = get(hidden, "additional_headers") if hidden else None
    for figure in (get(headers, STATED_COST_HEADER) if headers else None, get(usage, "cost") if usage else None):
        if isinstance(figure, bool) or not isinstance(figure, (int, float, str)):
            continue
        try:
            value = float(figure)
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def cost(model: str, usage: Usage, raw: Any, reported: Any = None) -> float:
    """USD from litellm's cost table; 0.0 for a model it does not know (never raises).

    litellm has already priced a whole response (`_hidden_params["response_cost"]`,
    its documented place) and a stream's usage (`usage.cost`, cache reads at their
    rate); pricing it again cost about a tenth of a call's CPU. A figure of 0 (an
    upstream's own `usage.cost: 0`, which litellm takes) is no price: the tokens are
    priced by the map instead, as litellm prices them: the usage litellm read (`raw`'s,
    or a stream's `reported`), cache reads and writes at their own rates, when it is
    litellm's own object; else `usage`, its cached tokens at the cache-read rate.
    """
    try:
        if raw is not None:
            known = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
            if known is None:
                known = litellm.completion_cost(completion_response=raw, model=model)
            if known and float(known) > 0:
                return float(known)
            reported = getattr(raw, "usage", None)
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens,
            cache_read_input_tokens=usage.cached_tokens,
            usage_object=reported if isinstance(reported, litellm.Usage) else None,
        )  # fmt: skip
        return float(prompt + completion)
    except Exception:  # noqa: BLE001 - unknown models raise; cost is best effort
        return 0.0
