"""Turning streamed chunks into events: text deltas, reasoning, whole tool calls, usage.

Pure bookkeeping, no I/O, so the sync and async paths (and the tests) share it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..text import Mender, well_formed, well_formed_value
from .base import ToolCall
from .echoes import NO_SECRETS, Scrubber
from .events import ReasoningDeltaEvent, StreamEvent, TextDeltaEvent, ToolCallDeltaEvent


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Tool-call arguments as a dict; what does not parse as a JSON object is kept under `_raw`."""
    if isinstance(raw, dict):
        return well_formed_value(raw)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": well_formed(raw)}
    return well_formed_value(value) if isinstance(value, dict) else {"_raw": well_formed(raw)}


_MISSING = object()
_PYDANTIC_GETATTR = getattr(BaseModel, "__getattr__", None)


def get(obj: Any, name: str) -> Any:
    """`obj.name`, or `obj[name]` for a dict (chunks arrive as either); None when it has none.

    Read where `getattr` would find it, in its order: the instance's own values,
    pydantic's extra fields, then the class (a property). litellm deletes the
    fields a chunk lacks, and `getattr` on a deleted pydantic field goes through
    pydantic's `__getattr__` to an AttributeError: several times a chunk, that
    costs more than all the rest of reading it.
    """
    if isinstance(obj, dict):
        return obj.get(name)
    values = getattr(obj, "__dict__", None)
    if values is None:
        return getattr(obj, name, None)
    found = values.get(name, _MISSING)
    if found is not _MISSING:
        return found
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra and name in extra:
        return extra[name]
    return getattr(obj, name, None) if _class_answers(type(obj), name) else None


@functools.cache
def _class_answers(cls: type, name: str) -> bool:
    """Whether `getattr` may find `name` on an instance of `cls` past its own and extra values: a class
    attribute (a property), or a class that makes its attributes up (its own `__getattr__`). Read for
    each field a chunk lacks; it depends on the class and the name alone."""
    hook = getattr(cls, "__getattr__", None)
    return (hook is not None and hook is not _PYDANTIC_GETATTR) or any(name in k.__dict__ for k in cls.__mro__)


def choice_0(chunk: Any) -> list[Any]:
    """The chunk's deltas for choice 0 alone: a reply to `n` > 1 interleaves several choices, and the
    reply is choice 0, streamed or not (litellm's non-streamed reply is read at `choices[0]`)."""
    return [c for c in get(chunk, "choices") or [] if (get(c, "index") or 0) == 0]


@dataclass
class _PendingCall:
    id: str
    name: str = ""
    arguments: str = ""


OUTPUT_SLACK_TOKENS = 8
"""Output past max_tokens let through before a stream is cut (plus 1/20 of max_tokens): our tokenizer may count
a little more than the upstream's."""


def output_limit(max_tokens: int) -> int:
    """The most output tokens, by our count, a reply to `max_tokens` may have before it is cut."""
    return max_tokens + max_tokens // 20 + OUTPUT_SLACK_TOKENS


class OutputCap:
    """Where a stream from an upstream that ignores `max_tokens` (a proxy, a local server) is cut.

    `admit(text)` says whether a delta still fits within `max_tokens` plus the slack, by `count` (litellm's token
    count of all the output so far). A token is at least one byte, so while the bytes since the last count could
    not hold the tokens left, nothing is counted: a stream well within its limit is counted rarely or never.
    """

    def __init__(self, max_tokens: int, count: Callable[[str], int | None]) -> None:
        self.limit = output_limit(max_tokens)
        self._count = count
        self._parts: list[str] = []
        self._counted = 0
        self._unchecked = 0

    def admit(self, text: str) -> bool:
        self._parts.append(text)
        self._unchecked += len(text.encode())
        if self._counted + self._unchecked <= self.limit:
            return True
        counted = self._count("".join(self._parts))
        if counted is None:  # no count: bytes bound the tokens
            return False
        if counted > self.limit:
            return False
        self._counted, self._unchecked = counted, 0
        return True


def thinking_text(blocks: Any) -> str:
    """The text of thinking blocks (Anthropic's, Mistral's as litellm passes them on)."""
    return "".join(get(b, "thinking") or "" for b in blocks or [] if isinstance(get(b, "thinking"), str))


def refused(holder: Any) -> bool:
    """Whether a message or delta says the model refused: Anthropic's `stop_reason: "refusal"`,
    which litellm keeps in `provider_specific_fields` (and reports as finish_reason content_filter)."""
    fields = get(holder, "provider_specific_fields")
    return bool(fields) and get(fields, "stop_reason") == "refusal"


@dataclass
class StreamAssembler:
    """Accumulates one streamed reply.

    Tool-call fragments are keyed by call id when the chunk carries one; a
    fragment without an id belongs to the most recently opened call. That keeps
    parallel calls apart even when an upstream repeats index 0 on every chunk.

    A refusal's text (OpenAI's `delta.refusal`) is answer text: it goes out as
    text deltas and becomes the content. litellm drops a chunk whose delta holds
    only a refusal, so when `tap` has put a `RefusalTap` under litellm's stream,
    refusal text is taken from there and handed out with the next chunk litellm lets through.

    A reply to `n` > 1 is choice 0 (`choice_0`). litellm passes on one finish reason only, the
    first any choice sent, under index 0; the tap notes choice 0's own, which wins.

    Text is made valid Unicode as it comes (`text.Mender`): a surrogate pair split between two chunks goes out
    joined, with the second; a half alone as U+FFFD. The server's secrets an upstream echoes are replaced as
    they come (`echoes`), the start of one at a piece's end kept back for the next. `finish` hands out what is
    still held at the end.
    """

    finish_reason: str | None = None
    usage: Any = None
    model: str = ""
    refusal: bool = False
    filter_results: list[Any] = field(default_factory=list)
    _calls: dict[str, _PendingCall] = field(default_factory=dict)
    _current: str | None = None
    _text: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    _tapped: list[str] | None = None
    _finish_0: list[str] = field(default_factory=list)
    _raw_usage: list[tuple[str, Any]] | None = None
    """The usage raw chunks carried, as the tap saw them (None: no tap)."""
    _named: list[str] = field(default_factory=list)
    """The model the upstream's own chunks name, as the tap read it from the first that does."""
    hidden: Any = None
    """litellm's hidden params of the stream, as the tap found them (its response headers among them)."""
    _answer_mender: Mender = field(default_factory=Mender)
    _reasoning_mender: Mender = field(default_factory=Mender)
    echoes: Scrubber = NO_SECRETS
    """The server's secrets, kept out of the text and tool calls as they come (`echoes`)."""
    cap: OutputCap | None = None
    cut: bool = False
    """The output reached the cap: what came after was dropped, and the reply ends there (`length`)."""

    def __post_init__(self) -> None:
        self._answer_echo = self.echoes.pieces()
        self._reasoning_echo = self.echoes.pieces()

    def _fits(self, text: str) -> bool:
        if self.cut or (self.cap is not None and not self.cap.admit(text)):
            self.cut = True
            self.finish_reason = "length"
            return False
        return True

    @property
    def text(self) -> str:
        """All answer text so far."""
        return "".join(self._text)

    @property
    def reasoning(self) -> str | None:
        """All reasoning text so far; None when there was none."""
        return "".join(self._reasoning) or None

    def tap(self, response: Any) -> None:
        """Read refusal text off the raw stream under litellm's `CustomStreamWrapper`, where it has one."""
        self.hidden = getattr(response, "_hidden_params", None)
        raw = getattr(response, "completion_stream", None)
        if raw is not None and hasattr(raw, "__aiter__"):
            self._tapped, self._raw_usage = [], []
            response.completion_stream = RefusalTap(raw, self._tapped, self._finish_0, self._raw_usage, self._named)

    @property
    def answered_by(self) -> str:
        """The model that answered: the one the upstream's chunks name, where the tap read one (litellm names
        every chunk of an OpenAI-compatible stream for the model asked for), else the first litellm's chunks name."""
        return self._named[0] if self._named else self.model

    @property
    def reported_usage(self) -> Any:
        """The usage the provider reported: Groq's `x_groq.usage` where it sent one (litellm reads none there and
        makes its own count up), else the last chunk's usage."""
        groq = [u for u in self._raw_usage or [] if u[0] == "x_groq"]
        return groq[-1][1] if groq else self.usage

    @property
    def upstream_usage(self) -> Any:
        """The last usage a chunk carried as the upstream sent it (litellm's own last chunk holds its own cost),
        where the tap read one; else None."""
        sent = [u for where, u in self._raw_usage or [] if where == "usage"]
        return sent[-1] if sent else None

    @property
    def sent_usage(self) -> Any:
        """The last usage the upstream sent (a chunk's `usage`, or Groq's `x_groq.usage`), where the tap read one,
        the chunk litellm refused included (an error inside a stream, with the usage of what it billed); else None."""
        return self._raw_usage[-1][1] if self._raw_usage else None

    @property
    def estimated(self) -> bool:
        """No raw chunk carried the provider's usage: litellm's usage chunk is its own count from the text."""
        return self._raw_usage is not None and not self._raw_usage

    def feed(self, chunk: Any) -> list[StreamEvent]:
        events = self.flush()
        usage = get(chunk, "usage")
        if usage:
            self.usage = usage
        # The first model named is the one that answered: litellm's own last chunk (usage) names the model asked for.
        self.model = self.model or get(chunk, "model") or ""
        for choice in choice_0(chunk):
            delta = get(choice, "delta")
            if delta is not None:
                self._feed_delta(delta, events)
            reason = get(choice, "finish_reason")
            if reason and not self.cut:
                self.finish_reason = reason
            fields = get(choice, "provider_specific_fields")
            results = get(fields, "content_filter_results") if fields else None
            if results:
                self.filter_results.append(results)
        return events

    def _feed_delta(self, delta: Any, events: list[StreamEvent]) -> None:
        reasoning = get(delta, "reasoning_content") or thinking_text(get(delta, "thinking_blocks"))
        if reasoning:
            self._add_reasoning(self._reasoning_echo.feed(self._reasoning_mender.feed(reasoning)), events)
        refusal = get(delta, "refusal") if self._tapped is None else None
        if isinstance(refusal, str) and refusal:
            self._add_refusal(refusal, events)
        content = get(delta, "content")
        if isinstance(content, str) and content:
            self._add_answer(self._answer_echo.feed(self._answer_mender.feed(content)), events)
        for fragment in get(delta, "tool_calls") or []:
            self._add_fragment(fragment, events)
        if refused(delta):
            self.refusal = True

    def _add_answer(self, text: str, events: list[StreamEvent]) -> None:
        if text and self._fits(text):
            self._text.append(text)
            events.append(TextDeltaEvent(text))

    def _add_reasoning(self, text: str, events: list[StreamEvent]) -> None:
        if text and self._fits(text):
            self._reasoning.append(text)
            events.append(ReasoningDeltaEvent(text))

    def _add_refusal(self, text: str, events: list[StreamEvent]) -> None:
        self.refusal = True
        if text := self._answer_echo.feed(self._answer_mender.feed(text)):
            self._text.append(text)
            events.append(TextDeltaEvent(text))

    def flush(self) -> list[StreamEvent]:
        """Refusal text the tap has seen and no event has carried yet (and choice 0's finish reason)."""
        events: list[StreamEvent] = []
        if self._finish_0 and not self.cut:
            self.finish_reason = self._finish_0[-1]
        if self._tapped:
            for text in self._tapped:
                self._add_refusal(text, events)
            self._tapped.clear()
        return events

    def finish(self) -> list[StreamEvent]:
        """The stream has ended: what `flush` hands out, then any half of a pair still held back, as U+FFFD."""
        events = self.flush()
        for echo, mender, add in (
            (self._reasoning_echo, self._reasoning_mender, self._add_reasoning),
            (self._answer_echo, self._answer_mender, self._add_answer),
        ):
            add(echo.feed(mender.end()) + echo.end(), events)
        return events

    def _add_fragment(self, fragment: Any, events: list[StreamEvent]) -> None:
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
        arguments = get(function, "arguments") or ""
        pending.arguments += arguments
        if piece := (name or "") + arguments:
            events.append(ToolCallDeltaEvent(piece))

    @property
    def tool_calls(self) -> list[ToolCall]:
        scrub = self.echoes.whole
        calls = self._calls.values()
        return [ToolCall(id=c.id, name=scrub(c.name), input=parse_arguments(scrub(c.arguments))) for c in calls]

    @property
    def is_empty(self) -> bool:
        """No text, no tool calls and no refusal: nothing came back at all."""
        return not self._text and not self._calls and not self.refusal


class RefusalTap:
    """The raw stream under litellm's wrapper, passed through whole, noting each delta's refusal text, choice 0's
    finish reason, the usage any chunk carried (`usage`, or Groq's `x_groq.usage` as litellm's iterator reads
    the chunk, before its parser drops it), as (where, usage), and the model the upstream's first chunk naming one
    names (`named`: read once, then no more looked for).

    Where litellm parses the raw chunks itself (its `chunk_parser`), what this stream hands on is litellm's own
    chunk: the upstream's are read in the parser alone."""

    def __init__(
        self, raw: Any, sink: list[str], finish: list[str], usage: list[tuple[str, Any]], named: list[str]
    ) -> None:
        self._raw = raw
        self._sink = sink
        self._finish = finish
        self._usage = usage
        self._named = named
        parser = getattr(raw, "chunk_parser", None)
        self._naming = not callable(parser)
        """Whether the chunks this stream hands on are the upstream's own and none has named its model yet."""
        if callable(parser):  # litellm's iterator drops `x_groq` as it parses each chunk: read it first
            raw.chunk_parser = functools.partial(self._parse, parser)
        self._several = False
        self._chunks: Any = None

    def __aiter__(self) -> RefusalTap:
        return self

    async def __anext__(self) -> Any:
        if self._chunks is None:  # the raw stream's own iterator, set up once (some set up state in __aiter__)
            self._chunks = self._raw.__aiter__()
        chunk = await self._chunks.__anext__()
        if self._naming:
            self._name(chunk)
        usage = get(chunk, "usage")
        if usage:
            self._usage.append(("usage", usage))
        choices = get(chunk, "choices") or []
        self._several = self._several or any(get(c, "index") for c in choices)
        for choice in choice_0(chunk):
            refusal = get(get(choice, "delta"), "refusal")
            if isinstance(refusal, str) and refusal:
                self._sink.append(refusal)
            reason = get(choice, "finish_reason")
            if self._several and isinstance(reason, str) and reason:  # one choice: litellm's own word stands
                self._finish.append(reason)
        return chunk

    def _parse(self, parser: Callable[..., Any], chunk: Any) -> Any:
        usage = get(chunk.get("x_groq"), "usage") if isinstance(chunk, dict) else None
        if usage:
            self._usage.append(("x_groq", usage))
        if not self._named:
            self._name(chunk)
        try:
            return parser(chunk=chunk)
        except Exception:
            # A chunk litellm refuses (OpenRouter's error inside a 200 stream) may carry the usage of what was billed.
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            if usage:
                self._usage.append(("usage", usage))
            raise

    def _name(self, chunk: Any) -> None:
        model = get(chunk, "model")
        if isinstance(model, str) and model:
            self._named.append(model)
            self._naming = False

    def __getattr__(self, name: str) -> Any:  # aclose, response, ...: the raw stream's own
        return getattr(self._raw, name)
