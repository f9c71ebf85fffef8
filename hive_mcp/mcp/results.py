"""Tool results as they leave on the wire."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..calls import Answers, Outcome
from ..dumps import DumpPage, DumpSummary
from ..provider.base import LLMResponse, ToolCall, Usage
from .answers import answers_text, charged_of, entry_of, totals
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


CALL_META = "hive-mcp/call"
"""The `_meta` key of a completion's bookkeeping (`CallFacts`): hosts and scripts read it; an agent handed the
structured content reads the answer without it."""


class CompletionAnswer(BaseModel):
    """What a completion's structured content holds: the answer first, then only what an agent acts on.

    `files`: the files sent first ({path, bytes, tokens}); `skipped_files`: those left out ({path, reason}).
    `truncated`: the answer was longer than one reply carries; `content` is its first part, `result_uri` the
    whole (`?part=N` for each of `parts`, or the read_result tool), `omitted_tokens` what was left out; for a
    call to several models, each entry of `answers` (and the verdict) says so of its own answer, and the set
    says `truncated` and the sum of `omitted_tokens`."""

    content: str
    model: str
    stop_reason: str
    # Each call's keys, not their types (an id and a name are strings, input an object): the schema
    # goes to every client's context.
    tool_calls: Annotated[
        list[ToolCall], WithJsonSchema({"type": "array", "items": {"type": "object", "required": ["id", "name", "input"]}})
    ]
    reasoning: str | None = _absent("string")
    conversation_id: str | None = _absent("string")
    not_stored: str | None = _absent("string")
    truncated: bool | None = _absent("boolean")
    parts: int | None = _absent("integer")
    result_uri: str | None = _absent("string")
    omitted_tokens: int | None = _absent("integer")
    files: list[dict[str, Any]] | None = _absent("array")
    skipped_files: list[dict[str, Any]] | None = _absent("array")
    # A call to several models (`models`): each one's entry (`answers.AnswerEntry`), and the judge's; the usage
    # in `_meta` is the set's. Each entry's keys are in the README, not in every client's context.
    answers: list[dict[str, Any]] | None = _absent("array")
    verdict: dict[str, Any] | None = _absent("object")
    # A failed call (an error result): its category, what an agent acts on (an `auth` error is not retried, a
    # `rate_limit` one later); `content` is then the failure's one line and `stop_reason` is `error`, so the
    # result still conforms to the schema (clients check an error result's structured content too).
    error: str | None = _absent("string")
    # What the failed call was charged, as the spend ledger's row says (none when it owed nothing): its
    # `input_tokens`, `output_tokens`, `cost_usd` (null and `unpriced` true when the model has no known price)
    # and `estimated` (litellm's count, not the provider's usage).
    charged: dict[str, Any] | None = _absent("object")


class CallFacts(Usage):
    """A completion's bookkeeping, in the result's `_meta` under `CALL_META`. `attempts` > 1 or a `dump_id` means
    it took retries, recorded in that dump. `cost_usd` is null and `unpriced` true when the model has no known
    price."""

    cost_usd: float | None = 0.0  # type: ignore[assignment]
    model_group: str | None = _absent("string")
    attempts: int = 1
    dump_id: str | None = _absent("string")
    dump_uri: str | None = _absent("string")
    omitted_turns: int = 0
    budget_remaining_usd: float | None = _absent("number")
    unpriced: bool | None = _absent("boolean")


def _answer_schema(schema: dict[str, Any]) -> None:
    """The output schema says what structured content holds: `CompletionAnswer`'s fields, in its order."""
    props = schema["properties"]
    schema["properties"] = {name: props[name] for name in CompletionAnswer.model_fields}
    schema["required"] = [name for name in CompletionAnswer.model_fields if name in schema.get("required", ())]


class CompletionResult(CompletionAnswer, CallFacts):
    """A finished completion as the tools build it; `completion_result` splits it into structured content (the
    answer) and `_meta` (the facts)."""

    model_config = ConfigDict(json_schema_extra=_answer_schema)

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
    unavailable: str | None = None
    """Set when the shared store did not answer: one line saying which failed calls the page leaves out."""

    @classmethod
    def from_page(cls, page: DumpPage) -> FailedRequestPage:
        items = [FailedRequestSummary.from_summary(s) for s in page.items]
        return cls(items=items, next_cursor=page.next_cursor, unavailable=page.unavailable)


_ABSENT_WHEN_NONE = tuple(
    name for name, f in CompletionResult.model_fields.items() if isinstance(f.json_schema_extra, _AbsentWhenNone)
)
"""Result fields left out when unset rather than sent as null (`_absent`): most replies have no reasoning and
no dump, `model_group` is known only when the call went through a configured group, `conversation_id` only
when conversations are on and the store took the answer (`not_stored` only when it did not),
`budget_remaining_usd` only when a budget applied, `unpriced` only when the model has no known price, the
paging fields only when the answer was paged, the files only when the call named some, `answers` and
`verdict` only for a call to several models."""


def completion_result(result: CompletionResult) -> CallToolResult:
    """The answer as structured content and as the text block; the bookkeeping in `_meta` (`CALL_META`)."""
    absent = {name for name in _ABSENT_WHEN_NONE if getattr(result, name) is None}
    data = result.model_dump(mode="json", exclude=absent or None)
    return CallToolResult(
        content=[TextContent(type="text", text=result.content)],
        structured_content={name: data[name] for name in CompletionAnswer.model_fields if name in data},
        meta={CALL_META: {name: data[name] for name in CallFacts.model_fields if name in data}},
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
        line = failure_text(failure.text, failure.dump_id)
        failed = error_result(line)
        failed.structured_content = {
            "content": line, "model": outcome.ref.name if outcome.ref is not None else "",
            "stop_reason": "error", "tool_calls": [], "error": failure.error_type,
        }  # fmt: skip
        if outcome.charged is not None:
            failed.structured_content["charged"] = charged_of(outcome.charged)
        return failed
    result = CompletionResult.from_response(outcome.response)
    files = outcome.files
    return completion_result(result.model_copy(update={
        "conversation_id": outcome.conversation_id, "not_stored": outcome.not_stored,
        "omitted_turns": outcome.omitted_turns,
        "budget_remaining_usd": outcome.budget_remaining_usd,
        "files": [asdict(f) for f in files.sent] if files is not None else None,
        "skipped_files": [asdict(f) for f in files.skipped] if files is not None and files.skipped else None,
    }))  # fmt: skip


def call_facts(result: CallToolResult) -> dict[str, Any]:
    """A completion result's bookkeeping (`CallFacts` as JSON); empty for any other result."""
    facts = (result.meta or {}).get(CALL_META)
    return facts if isinstance(facts, dict) else {}


def json_result(result: BaseModel) -> CallToolResult:
    """A result that is all data: the same JSON as text and as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
    )
