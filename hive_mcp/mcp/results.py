"""Tool results as they leave on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, WithJsonSchema

from ..calls import Answers, Outcome
from ..dumps import DumpPage, DumpSummary
from ..provider.base import LLMResponse, ToolCall, Usage
from .answers import answers_text, entry_of, totals
from .constants import dump_uri
from .errors import error_result, failure_text


def usage_of(source: object) -> dict[str, Any]:
    """The usage fields of anything that carries them (a response, a stream's finish event)."""
    return {name: getattr(source, name) for name in Usage.model_fields if hasattr(source, name)}


class _AbsentWhenNone:
    """The schema of a field left out of the result when unset (`completion_result`): its plain type, never null."""

    def __init__(self, json_type: str) -> None:
        self.json_type = json_type

    def __call__(self, schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema["type"] = self.json_type


def _absent(json_type: str) -> Any:
    """A field that is None unless set, and then left out of the result rather than sent as null."""
    return Field(default=None, json_schema_extra=_AbsentWhenNone(json_type))


class CompletionResult(Usage):
    """A finished completion. `attempts` > 1 or a `dump_id` means it took retries, recorded in that dump.
    `cost_usd` is null and `unpriced` true when the model has no known price."""

    cost_usd: float | None = 0.0  # type: ignore[assignment]
    content: str
    model: str
    stop_reason: str
    # Each call's keys, not their types (an id and a name are strings, input an object): the schema
    # goes to every client's context.
    tool_calls: Annotated[
        list[ToolCall], WithJsonSchema({"type": "array", "items": {"type": "object", "required": ["id", "name", "input"]}})
    ]
    reasoning: str | None = _absent("string")
    model_group: str | None = _absent("string")
    attempts: int
    dump_id: str | None = None
    dump_uri: str | None = None
    conversation_id: str | None = _absent("string")
    omitted_turns: int = 0
    budget_remaining_usd: float | None = _absent("number")
    unpriced: bool | None = _absent("boolean")
    # A call to several models (`models`): each one's entry (`answers.AnswerEntry`), and the judge's. The
    # totals above are the set's; each entry's keys are in the README, not in every client's context.
    answers: list[dict[str, Any]] | None = _absent("array")
    verdict: dict[str, Any] | None = _absent("object")

    @classmethod
    def from_response(cls, r: LLMResponse) -> CompletionResult:
        usage = usage_of(r)
        if r.unpriced:
            usage.update(cost_usd=None, unpriced=True)
        return cls(
            **usage,
            content=r.content,
            model=r.model,
            stop_reason=r.stop_reason,
            tool_calls=r.tool_calls,
            reasoning=r.reasoning,
            model_group=r.model_group,
            attempts=r.attempts,
            dump_id=r.dump_id,
            dump_uri=dump_uri(r.dump_id) if r.dump_id else None,
        )


class FailedRequestSummary(BaseModel):
    """One failed call in a listing; read `uri` for the whole request."""

    id: str
    uri: str
    timestamp: datetime
    model: str
    error_type: str
    outcome: str
    attempt_count: int
    message_count: int
    size_bytes: int

    @classmethod
    def from_summary(cls, s: DumpSummary) -> FailedRequestSummary:
        return cls(uri=dump_uri(s.id), **s.model_dump())


class FailedRequestPage(BaseModel):
    """A page of failed calls, newest first. Pass `next_cursor` back for the next page."""

    items: list[FailedRequestSummary]
    next_cursor: str | None = None

    @classmethod
    def from_page(cls, page: DumpPage) -> FailedRequestPage:
        return cls(items=[FailedRequestSummary.from_summary(s) for s in page.items], next_cursor=page.next_cursor)


_ABSENT_WHEN_NONE = tuple(
    name for name, f in CompletionResult.model_fields.items() if isinstance(f.json_schema_extra, _AbsentWhenNone)
)
"""Result fields left out when unset rather than sent as null (`_absent`): most replies have no reasoning,
`model_group` is known only when the call went through a configured group, and `conversation_id`
only when conversations are on (and the store answered), `budget_remaining_usd` only when a budget applied,
`unpriced` only when the model has no known price, `answers` and `verdict` only for a call to several
models."""


def completion_result(result: CompletionResult) -> CallToolResult:
    """Structured content for clients that read the schema, the reply text for those that read only text."""
    absent = {name for name in _ABSENT_WHEN_NONE if getattr(result, name) is None}
    return CallToolResult(
        content=[TextContent(type="text", text=result.content)],
        structured_content=result.model_dump(mode="json", exclude=absent or None),
    )


def answers_result(result: Answers) -> CallToolResult:
    """A fan-out's result: every model's entry and the verdict; the text lists the answers under their models.
    An error when no model answered."""
    entries = [entry_of(a) for a in result.answers]
    verdict = entry_of(result.verdict) if result.verdict is not None else None
    text = answers_text(entries, verdict)
    attempts = sum(a.outcome.attempts for a in (*result.answers, result.verdict) if a is not None and a.outcome)
    data = CompletionResult(
        **totals(result), content=text, model=", ".join(e.model for e in entries), stop_reason="models",
        tool_calls=[], attempts=attempts, answers=[e.lean() for e in entries],
        verdict=verdict.lean() if verdict is not None else None,
    )  # fmt: skip
    out = completion_result(data)
    out.is_error = all(e.error is not None for e in entries)
    return out


def outcome_result(outcome: Outcome | Answers) -> CallToolResult:
    """A completion call's outcome as its tool result: the answer, or its failure's one line and dump (or a
    fan-out's answers)."""
    if isinstance(outcome, Answers):
        return answers_result(outcome)
    if outcome.response is None:
        failure = outcome.failure
        assert failure is not None, "an outcome holds a response or a failure"
        return error_result(failure_text(failure.text, failure.dump_id))
    result = CompletionResult.from_response(outcome.response)
    return completion_result(result.model_copy(update={
        "conversation_id": outcome.conversation_id, "omitted_turns": outcome.omitted_turns,
        "budget_remaining_usd": outcome.budget_remaining_usd,
    }))  # fmt: skip


def json_result(result: BaseModel) -> CallToolResult:
    """A result that is all data: the same JSON as text and as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
    )
