"""Replies in the shapes real providers send, for the scripted upstream (harness/upstream.py): refusals,
content filters, reasoning, Anthropic's and Gemini's own formats."""

from __future__ import annotations

import json
from typing import Any

from harness.upstream import Reply

def _completion(choice: dict[str, Any], *, usage: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, **choice}],
        "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        **top,
    }


def refusal_reply(refusal: str) -> Reply:
    """OpenAI's refusal: `content` null, the text in `message.refusal`, finish_reason stop."""
    message = {"role": "assistant", "content": None, "refusal": refusal, "annotations": []}
    return Reply("json", body=_completion({"message": message, "finish_reason": "stop"}))


def streamed_refusal(*parts: str) -> Reply:
    """OpenAI's streamed refusal: a role chunk with `refusal: ""`, then `delta.refusal` fragments."""
    return Reply.stream([{"role": "assistant", "content": None, "refusal": ""}, *({"refusal": p} for p in parts)])


def _azure_filter_results(categories: list[str]) -> dict[str, Any]:
    return {
        name: {"filtered": name in categories, "severity": "high" if name in categories else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }


def azure_filtered_reply(categories: list[str], *, content: str | None = None) -> Reply:
    """Azure's content filter: finish_reason content_filter, per-choice filter results and
    prompt_filter_results; with `content=None` the choice has no `message` key at all."""
    choice: dict[str, Any] = {
        "finish_reason": "content_filter",
        "logprobs": None,
        "content_filter_results": _azure_filter_results(categories),
    }
    if content is not None:
        choice["message"] = {"role": "assistant", "content": content}
    prompt = [{"prompt_index": 0, "content_filter_results": _azure_filter_results([])}]
    return Reply("json", body=_completion(choice, prompt_filter_results=prompt))


def reasoning_reply(content: str, reasoning: str, *, reasoning_tokens: int = 5) -> Reply:
    """DeepSeek's reasoner: `message.reasoning_content` beside the content, reasoning tokens counted."""
    usage = {
        "prompt_tokens": 11, "completion_tokens": 20, "total_tokens": 31,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    return Reply("json", body=_completion({"message": message, "finish_reason": "stop"}, usage=usage))


def streamed_reasoning(reasoning: list[str], content: list[str], *, reasoning_tokens: int = 5) -> Reply:
    """DeepSeek's streamed reasoner: `reasoning_content` deltas, then `content` deltas."""
    usage = {
        "prompt_tokens": 11, "completion_tokens": 20, "total_tokens": 31,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    deltas = [{"reasoning_content": r, "content": None} for r in reasoning] + [{"content": c} for c in content]
    return Reply.stream(deltas, usage=usage)


def no_message_reply(finish_reason: str = "stop") -> Reply:
    """A choice without a `message`: litellm raises "Invalid response object" with a traceback in its text."""
    return Reply("json", body=_completion({"finish_reason": finish_reason, "logprobs": None}))


def anthropic_reply(
    content: list[dict[str, Any]], *, stop_reason: str = "end_turn", stop_details: dict[str, Any] | None = None
) -> Reply:
    """An Anthropic message with the given content blocks (text, thinking) and stop reason."""
    body: dict[str, Any] = {
        "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test", "content": content,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    if stop_details is not None:
        body["stop_details"] = stop_details
    return Reply("json", body=body)


def _anthropic_sse(block: dict[str, Any], delta: dict[str, Any], stop_reason: str) -> Reply:
    """An Anthropic SSE stream of one content block (`block` opened, `delta` its whole content), then the stop."""
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    return Reply.raw(body, content_type="text/event-stream")


def anthropic_stream(text: str, *, stop_reason: str = "end_turn") -> Reply:
    """An Anthropic SSE stream: one text block, then the message's stop reason."""
    return _anthropic_sse({"type": "text", "text": ""}, {"type": "text_delta", "text": text}, stop_reason)


def anthropic_tool_use(tool_id: str, name: str, arguments: dict[str, Any]) -> Reply:
    """An Anthropic SSE stream in which the model calls one tool (an agent's model asking its host to call it)."""
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
    return _anthropic_sse(block, {"type": "input_json_delta", "partial_json": json.dumps(arguments)}, "tool_use")


def gemini_reply(text: str | None, *, finish_reason: str = "STOP") -> Reply:
    """A Gemini generateContent reply (no parts when `text` is None), e.g. stopped for SAFETY."""
    content: dict[str, Any] = {"role": "model", "parts": [{"text": text}] if text is not None else []}
    body = {
        "candidates": [{"content": content, "finishReason": finish_reason, "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": finish_reason == "SAFETY"}]}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
    }
    return Reply("json", body=body)
