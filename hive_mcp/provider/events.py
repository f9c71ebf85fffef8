"""Stream events: what `LLMProvider.stream` yields, in order.

A stream is zero or more text/reasoning deltas, tool-call pieces and tool calls,
then exactly one terminal event: `FinishEvent` on success or `StreamErrorEvent`
on failure. The text deltas joined are the reply's whole `content`; reasoning
never mixes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .response import LLMResponse, Usage


@dataclass(frozen=True)
class TextDeltaEvent:
    """New answer text (a refusal's text included): `content` is the delta."""

    content: str


@dataclass(frozen=True)
class ReasoningDeltaEvent:
    """New reasoning or thinking text, where the upstream streams it apart from the answer."""

    content: str


@dataclass(frozen=True)
class ToolCallDeltaEvent:
    """A piece of a tool call as the model writes it (its name, or a fragment of its arguments). Not for
    relaying (the call arrives whole in `ToolCallEvent`); the upstream bills it, so a call cut short owes it.
    A stream that fails after pieces only may still be retried: none of them reached the caller."""

    content: str


@dataclass(frozen=True)
class ToolCallEvent:
    """One complete tool call, its argument fragments joined and parsed."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]


@dataclass(frozen=True)
class FinishEvent:
    """The stream ended normally: the finished reply, as `acomplete` would have returned it.

    Its content is the stream's text deltas joined; usage, reasoning, attempts and
    the dump are the response's, so a stream's result is built like any other.
    """

    response: LLMResponse

    # hive's provider gave these flat on the event; code written against it reads them here.
    @property
    def input_tokens(self) -> int:
        return self.response.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.response.output_tokens

    @property
    def stop_reason(self) -> str:
        return self.response.stop_reason

    @property
    def model(self) -> str:
        return self.response.model


@dataclass(frozen=True)
class StreamErrorEvent:
    """The stream ended in failure. `recoverable` means a later retry may succeed."""

    error: str
    recoverable: bool
    error_type: str
    upstream_status: int | None = None
    attempts: int = 1
    dump_id: str | None = None
    model: str = ""
    billed: Usage | None = None
    """The provider's usage of replies it gave and the call did not keep (`ProviderError.billed`)."""


StreamEvent = (
    TextDeltaEvent | ReasoningDeltaEvent | ToolCallDeltaEvent | ToolCallEvent | FinishEvent | StreamErrorEvent
)

__all__ = [
    "TextDeltaEvent",
    "ReasoningDeltaEvent",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "FinishEvent",
    "StreamErrorEvent",
    "StreamEvent",
]
