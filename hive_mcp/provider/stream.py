"""Turning streamed chunks into events: text deltas, reasoning, whole tool calls, usage.

Pure bookkeeping, no I/O, so the sync and async paths (and the tests) share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .base import ToolCall
from .events import ReasoningDeltaEvent, StreamEvent, TextDeltaEvent


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Tool-call arguments as a dict; what does not parse as a JSON object is kept under `_raw`."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def get(obj: Any, name: str) -> Any:
    """`obj.name`, or `obj[name]` for a dict (chunks arrive as either)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


@dataclass
class _PendingCall:
    id: str
    name: str = ""
    arguments: str = ""


@dataclass
class StreamAssembler:
    """Accumulates one streamed reply.

    Tool-call fragments are keyed by call id when the chunk carries one; a
    fragment without an id belongs to the most recently opened call. That keeps
    parallel calls apart even when an upstream repeats index 0 on every chunk.
    """

    reasoning: str = ""
    finish_reason: str | None = None
    usage: Any = None
    model: str = ""
    _calls: dict[str, _PendingCall] = field(default_factory=dict)
    _current: str | None = None
    _text: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All text so far."""
        return "".join(self._text)

    def feed(self, chunk: Any) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        usage = get(chunk, "usage")
        if usage:
            self.usage = usage
        self.model = get(chunk, "model") or self.model
        for choice in get(chunk, "choices") or []:
            delta = get(choice, "delta")
            if delta is not None:
                reasoning = get(delta, "reasoning_content")
                if reasoning:
                    self.reasoning += reasoning
                    events.append(ReasoningDeltaEvent(reasoning))
                content = get(delta, "content")
                if content:
                    self._text.append(content)
                    events.append(TextDeltaEvent(content))
                for fragment in get(delta, "tool_calls") or []:
                    self._add_fragment(fragment)
            reason = get(choice, "finish_reason")
            if reason:
                self.finish_reason = reason
        return events

    def _add_fragment(self, fragment: Any) -> None:
        call_id = get(fragment, "id")
        function = get(fragment, "function")
        if call_id and call_id not in self._calls:
            self._calls[call_id] = _PendingCall(id=call_id)
        if call_id:
            self._current = call_id
        elif self._current is None:
            self._current = f"call_{len(self._calls)}"
            self._calls[self._current] = _PendingCall(id=self._current)
        pending = self._calls[self._current]
        name = get(function, "name")
        if name:
            pending.name = name
        pending.arguments += get(function, "arguments") or ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(id=c.id, name=c.name, input=parse_arguments(c.arguments)) for c in self._calls.values()]

    @property
    def is_empty(self) -> bool:
        return not self._text and not self._calls
