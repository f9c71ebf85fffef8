"""One question to several models at once, and a judge over their answers: N runs of the same chain.

`run` sends a call that names `many` to each model as a copy of itself, in
parallel, every copy through the whole chain (admission, its conversation,
metering, slot, fallbacks); a model that fails or is refused after the set was
let through does not fail the others. The copies are one set (`panel.Panel`):
`gather`, linked right after metering, holds each until every one has reserved
its worst case, so a set whose budget does not fit is refused before any
request. With a judge, its call is a member too: it reserves up front, its
input bounded by the question and every model's `max_tokens` (each answer
counted as that many tokens), then waits for the answers, which replace its
messages, and gives its verdict.

With a conversation, each model continues a fork of it (the original stays as
it was), so every answer carries a conversation of its own to follow up on; a
call without one starts one conversation per model. The judge keeps none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio

from ..provider.base import Message
from ..refusal import Refusal
from .call import Call, Outcome, Progress, Thread
from .chain import Chain, Next
from .panel import Panel, Seat

__all__ = ["Answer", "Answers", "JUDGE_PROMPT", "gather", "judge_messages", "run"]

JUDGE_PROMPT = (
    "Several models were asked the question below. Compare their answers: say which is best and why, "
    "and point out any error or disagreement."
)
"""What the judge is asked to do (`judge_prompt` replaces it)."""

PLACEHOLDER = " x"
"""One token in every tokenizer litellm counts with: an answer not yet written is counted as `max_tokens` of it."""


@dataclass(frozen=True)
class Answer:
    """One model's part of a set: its outcome, or the refusal that stopped it after the set was let through."""

    model: str
    outcome: Outcome | None
    refusal: str | None
    latency_s: float


@dataclass(frozen=True)
class Answers:
    """What a fan-out came to: every model's answer in the order asked, and the verdict when judged."""

    answers: tuple[Answer, ...]
    verdict: Answer | None = None


def _text(content: object) -> str:
    """A message's content as text: a string, or a list of parts' text (other parts named by type)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]" for p in content)
    return ""


def judge_messages(call: Call, answers: Sequence[tuple[str, str]], prompt: str | None) -> tuple[Message, ...]:
    """The judge's one message: the instruction, the call's system prompt and messages, then each answer under
    its model's name."""
    parts = [prompt or JUDGE_PROMPT, ""]
    if call.system:
        parts += ["## System prompt", call.system, ""]
    parts.append("## Question")
    parts += [f"{m.get('role')}: {_text(m.get('content'))}" for m in call.messages]
    for model, text in answers:
        parts += ["", f"## Answer from {model}", text]
    return ({"role": "user", "content": "\n".join(parts)},)


async def gather(call: Call, next: Next) -> Outcome:
    """The fan-out step: a member of a set waits here until every member may be sent (the judge, until the
    answers are in, which become its messages); any other call passes."""
    seat = call.seat
    if seat is None:
        return await next(call)
    await seat.panel.arrive(call.model or "", call.max_tokens, call.deadline_s, judge=seat.judge)
    if seat.judge:
        call = replace(call, messages=tuple(await seat.panel.judge_messages()), send=None)
    return await next(call)


def _branch(call: Call, model: str, seat: Seat, tag: str) -> Call:
    """A copy of `call` for one member: its own progress and observer; a conversation continued as a fork."""
    thread = Thread(call.thread.id, fork=True) if call.thread is not None else None
    return replace(
        call, model=model, many=None, seat=seat, thread=thread, tag=f"{tag}: ", progress=Progress(),
        observer=call.observer.branch(),
    )  # fmt: skip


async def _member(chain: Chain, call: Call, name: str) -> Answer:
    panel = call.seat.panel if call.seat is not None else None
    assert panel is not None and call.model is not None
    started = time.monotonic()
    try:
        outcome = await chain.run(call)
    except Refusal as exc:
        if panel.refuse(name, exc):
            return Answer(call.model, None, None, time.monotonic() - started)
        return Answer(call.model, None, str(exc), time.monotonic() - started)
    return Answer(call.model, outcome, None, time.monotonic() - started)


async def run(chain: Chain, call: Call) -> Outcome | Answers:
    """The call's outcome; for a call naming `many`, every model's answer (and the judge's verdict). A set
    refused before any request raises that refusal, naming the member."""
    many = call.many
    if many is None:
        return await chain.run(call)
    if not any(getattr(step, "__wrapped__", step) is gather for step in chain.steps):
        # without the gate, no member would know the set was let through
        raise TypeError("a chain that runs a fan-out links calls.fanout.gather (standard_chain does)")
    panel = Panel(len(many.models), judged=many.judge is not None)
    answers: list[Answer | None] = [None] * len(many.models)
    verdict: Answer | None = None

    async def ask(i: int, model: str) -> None:
        answers[i] = await _member(chain, _branch(call, model, Seat(panel), model), model)
        if all(a is not None for a in answers):
            done = [(a.model, a.outcome.response.content) for a in answers if a and a.outcome and a.outcome.response]
            panel.answer([m for m, _ in done], judge_messages(call, done, many.judge_prompt))

    async def judge(model: str) -> None:
        nonlocal verdict
        await panel.seated.wait()
        if panel.refused is not None:
            return
        # Reserved as its worst case: every answer as long as its model may write.
        bound = [(m, PLACEHOLDER * panel.max_tokens[m]) for m in many.models]
        params = replace(call.params, tools=None, response_format=None, json_mode=False)
        judging = replace(
            _branch(call, model, Seat(panel, judge=True), "judge"), thread=None, keep=False, system="", prompt=None,
            messages=judge_messages(call, bound, many.judge_prompt), params=params, before_s=panel.deadline_s,
        )  # fmt: skip
        verdict = await _member(chain, judging, f"judge {model}")

    async with anyio.create_task_group() as tg:
        for i, model in enumerate(many.models):
            tg.start_soon(ask, i, model)
        if many.judge is not None:
            tg.start_soon(judge, many.judge)
    if panel.refused is not None:
        raise panel.refused
    return Answers(tuple(a for a in answers if a is not None), verdict)

