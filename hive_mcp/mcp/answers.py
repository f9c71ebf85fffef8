"""A fan-out's result as it leaves on the wire: one entry per model (and the verdict), and the text block that
lists the answers one after the other, each headed with its model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel

from ..calls import Answer, Answers
from ..provider.base import Usage
from ..spend import Charge

__all__ = ["AnswerEntry", "answers_text", "charged_of", "entry_of", "totals"]


def charged_of(charge: Charge) -> dict[str, Any]:
    """What a failed call was charged, as its result says it: `input_tokens`, `output_tokens`, `cost_usd` (null
    and `unpriced` true when the model has no known price), `estimated`."""
    out: dict[str, Any] = asdict(charge)
    if charge.cost_usd is None:
        out["unpriced"] = True
    return out


class AnswerEntry(BaseModel):
    """One model's answer: its text, or `error` (one line) and `error_type` (its category, `refused` for a
    refusal); `conversation_id` continues with it."""

    content: str = ""
    model: str
    conversation_id: str | None = None
    not_stored: str | None = None
    """Why the answer went to no conversation (one line naming the store)."""
    error: str | None = None
    error_type: str | None = None
    dump_id: str | None = None
    model_group: str | None = None
    deployment: str | None = None
    """The deployment that answered (a fallback's, when the branch fell back)."""
    usage: dict[str, Any] | None = None
    """input_tokens, output_tokens, cost_usd (null when the model has no known price); a failed model's: what
    it was charged (`charged_of`)."""
    latency_ms: int = 0
    truncated: bool | None = None
    """The answer was too long for the set's reply: `content` is its first part, `result_uri` the whole (`?part=N`
    for each of `parts`), `omitted_tokens` what was left out (`paging.ResultPages.page_answers`)."""
    parts: int | None = None
    result_uri: str | None = None
    omitted_tokens: int | None = None

    def lean(self) -> dict[str, Any]:
        """As sent: fields with nothing to say left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"content"} if self.error else None)


def entry_of(a: Answer) -> AnswerEntry:
    latency = round(a.latency_s * 1000)
    o = a.outcome
    if o is None:
        return AnswerEntry(model=a.model, error=a.refusal, error_type="refused", latency_ms=latency)
    if o.response is None:
        f = o.failure
        assert f is not None, "an outcome holds a response or a failure"
        usage = charged_of(o.charged) if o.charged is not None else None
        return AnswerEntry(
            model=a.model, error=f.text, error_type=f.error_type, dump_id=f.dump_id, usage=usage, latency_ms=latency
        )
    r = o.response
    usage = {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
             "cost_usd": None if r.unpriced else r.cost_usd}  # fmt: skip
    return AnswerEntry(
        content=r.content, model=a.model, conversation_id=o.conversation_id, not_stored=o.not_stored,
        model_group=r.model_group,
        deployment=r.model or None, usage=usage, latency_ms=latency,
    )  # fmt: skip


def answers_text(entries: list[AnswerEntry], verdict: AnswerEntry | None) -> str:
    """Each answer under its model's heading, then the verdict under the judge's."""
    heads = [(e.model, e) for e in entries] + ([(f"verdict ({verdict.model})", verdict)] if verdict is not None else [])
    return "\n\n".join(f"## {head}\n{e.content if e.error is None else 'error: ' + e.error}" for head, e in heads)


def totals(result: Answers) -> dict[str, Any]:
    """The set's usage: every model's and the judge's, summed, a failed one's what it was charged; what it cost
    (unpriced when any part was)."""
    outcomes = [a.outcome for a in (*result.answers, result.verdict) if a is not None and a.outcome is not None]
    responses = [o.response for o in outcomes if o.response is not None]
    charges = [o.charged for o in outcomes if o.response is None and o.charged is not None]
    sums: dict[str, Any] = {
        name: sum(getattr(r, name, 0) or 0 for r in (*responses, *charges)) for name in Usage.model_fields
    }
    if any(r.unpriced for r in responses) or any(c.cost_usd is None for c in charges):
        sums.update(cost_usd=None, unpriced=True)
    return sums
