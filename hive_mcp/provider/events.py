"""Stream events: what `LLMProvider.stream` yields, in order.

A stream is zero or more text/reasoning deltas and tool calls, then exactly one
terminal event: `FinishEvent` on success or `StreamErrorEvent` on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TextSoFar:
    """A reply's text as it grows, in parts: handing out "the text up to here" costs nothing
    until someone reads it. (A string grown at every chunk while the previous event still
    held the old one was copied whole each time: quadratic in the length of a reply.)"""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[str] = []

    def add(self, part: str) -> int:
        """Append `part`; returns how many parts there are now."""
        self._parts.append(part)
        return len(self._parts)

    def text(self, parts: int | None = None) -> str:
        """The first `parts` parts joined (all of them by default)."""
        return "".join(self._parts if parts is None else self._parts[:parts])


@dataclass(frozen=True)
class TextDeltaEvent:
    """New text: `content` is the delta, `snapshot` all text so far (joined when read)."""

    content: str
    so_far: TextSoFar = field(default_factory=TextSoFar, repr=False, compare=False)
    parts: int | None = field(default=None, repr=False, compare=False)

    @property
    def snapshot(self) -> str:
        return self.so_far.text(self.parts) if self.parts is not None else self.content


@dataclass(frozen=True)
class TextEndEvent:
    """The text part of the reply is complete."""

    full_text: str


@dataclass(frozen=True)
class ReasoningDeltaEvent:
    """Reasoning text, where the upstream streams it separately."""

    content: str


@dataclass(frozen=True)
class ToolCallEvent:
    """One complete tool call, its argument fragments joined and parsed."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]


@dataclass(frozen=True)
class FinishEvent:
    """The stream ended normally."""

    stop_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""
    attempts: int = 1
    dump_id: str | None = None


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


StreamEvent = (
    TextDeltaEvent | TextEndEvent | ReasoningDeltaEvent | ToolCallEvent | FinishEvent | StreamErrorEvent
)

__all__ = [
    "TextDeltaEvent",
    "TextEndEvent",
    "ReasoningDeltaEvent",
    "ToolCallEvent",
    "FinishEvent",
    "StreamErrorEvent",
    "StreamEvent",
]
