"""The call layer on its own, with no MCP in sight: a `Call` down the standard chain to litellm's real HTTP path
and the scripted upstream, one more step linked in, a refusal from a step, and what runs once the outcome is final;
and the chain as the README and docs/layout.md draw it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from harness.upstream import Reply, Upstream
from hive_mcp.calls import Call, Chain, Conversations, Next, Outcome, Params, standard_chain
from hive_mcp.conversations import ConversationLocks
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from hive_mcp.llms.static import StaticCatalogue
from hive_mcp.refusal import Refusal

from .clients import until
from .conftest import MODEL

pytestmark = pytest.mark.anyio


def chain_for(provider, *linked):
    """The standard chain with `linked` steps just before the queue for a slot, as a step is linked in there."""
    chain = standard_chain(provider, Limits(), StaticCatalogue(MODEL), default_model=MODEL)
    at = [step.span_name for step in chain.steps].index("hive_mcp.queue")
    return Chain([*chain.steps[:at], *linked, *chain.steps[at:]], chain.last)


def ask(text: str, **fields) -> Call:
    return Call(caller="alice", messages=({"role": "user", "content": text},), **fields)


async def test_a_call_goes_down_the_chain_to_the_upstream_and_comes_back_an_outcome(provider, upstream: Upstream) -> None:
    upstream.script(Reply.text("four"))
    outcome = await chain_for(provider).run(ask("two and two?", params=Params(max_tokens=7)))
    assert outcome.response is not None and outcome.response.content == "four"
    (request,) = upstream.chat_requests()
    assert request.messages[-1] == {"role": "user", "content": "two and two?"}
    assert request.body["max_tokens"] == 7


async def test_a_step_linked_in_sees_the_admitted_call_and_amends_the_outcome(provider, upstream: Upstream) -> None:
    upstream.script(Reply.text("hello"))
    seen: list[Call] = []

    async def noting(call: Call, next: Next) -> Outcome:
        seen.append(call)
        outcome = await next(call)
        return replace(outcome, omitted_turns=41)

    outcome = await chain_for(provider, noting).run(ask("hi"))
    (call,) = seen
    assert call.ref is not None and call.ref.name == MODEL and call.ref.group == MODEL  # resolved by admission
    assert call.max_tokens > 0 and call.deadline_s == Limits().deadline_s
    assert outcome.omitted_turns == 41 and outcome.response is not None and outcome.response.content == "hello"


class Closed(Refusal):
    field = "door"

    def __str__(self) -> str:
        return "door: closed"


async def test_a_step_that_refuses_ends_the_call_before_any_upstream_request(provider, upstream: Upstream) -> None:
    async def refusing(call: Call, next: Next) -> Outcome:
        raise Closed()

    with pytest.raises(Refusal, match="door: closed"):
        await chain_for(provider, refusing).run(ask("hi"))
    assert upstream.chat_requests() == []


async def test_admission_refuses_by_the_limits_naming_the_field(provider, upstream: Upstream) -> None:
    chain = standard_chain(provider, Limits(max_tokens=10), StaticCatalogue(MODEL), default_model=MODEL)
    with pytest.raises(Refusal) as info:
        await chain.run(ask("hi", params=Params(max_tokens=11)))
    assert info.value.field == "max_tokens" and str(info.value).startswith("invalid arguments: max_tokens:")
    assert upstream.chat_requests() == []


async def test_what_asked_to_run_once_final_runs_when_the_call_is_cancelled(provider, upstream: Upstream) -> None:
    upstream.script(Reply.hang())
    finals: list[Outcome | None] = []
    asked = anyio.Event()

    async def watching(call: Call, next: Next) -> Outcome:
        async def final(outcome: Outcome | None) -> Outcome | None:
            finals.append(outcome)
            return outcome

        call.progress.afters.append(final)
        asked.set()
        return await next(call)

    async with anyio.create_task_group() as tg:
        tg.start_soon(chain_for(provider, watching).run, ask("hi"))
        await asked.wait()
        await until(lambda: bool(upstream.chat_requests()), "the call reached the upstream")
        tg.cancel_scope.cancel()
    assert finals == [None]


async def test_a_failed_calls_dump_names_its_caller(provider, upstream: Upstream, store: DumpStore) -> None:
    upstream.script(Reply.error(400, "bad request"))
    outcome = await chain_for(provider).run(ask("hi"))
    assert outcome.failure is not None and outcome.failure.dump_id is not None
    assert store.read(outcome.failure.dump_id).caller == "alice"


class ReaderNoting:
    """The real provider, noting which tasks iterate its streams."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.readers: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self.provider, name)

    async def stream(self, request):
        async for ev in self.provider.stream(request):
            self.readers.add(anyio.get_current_task().id)
            yield ev


async def test_a_stream_is_read_in_a_task_of_its_own_not_in_the_calls(provider, upstream: Upstream) -> None:
    """Each chunk then wakes the reader's few frames, not the whole chain of steps the call's task waits in."""
    upstream.script(Reply.stream(["a", "b", "c"]))
    noting = ReaderNoting(provider)
    call_tasks: list[int] = []

    async def where(call: Call, next: Next) -> Outcome:
        call_tasks.append(anyio.get_current_task().id)
        return await next(call)

    outcome = await chain_for(noting, where).run(ask("hi", stream=True))
    assert outcome.response is not None and outcome.response.content == "abc"
    assert len(noting.readers) == 1 and noting.readers.isdisjoint(call_tasks)


class Noted:
    """The provider, noting each name it is asked to resolve."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.resolved: list[str] = []

    async def ready(self) -> None:
        await self.provider.ready()

    def resolve(self, model: str):
        self.resolved.append(model)
        return self.provider.resolve(model)


async def test_names_a_caller_makes_up_are_kept_resolved_only_a_few_at_a_time(provider) -> None:
    """Without a config any litellm model string is callable: a caller naming a new one on every call must not
    grow the server's memory with each. The catalogue's own names stay resolved for good; others, the last few."""
    from hive_mcp.calls.admission import Admission

    noted = Noted(provider)
    admission = Admission(Limits(), StaticCatalogue(MODEL), noted, MODEL, kept=3)
    made_up = [f"openai/made-up-{i}" for i in range(4)]
    for name in [MODEL, *made_up, made_up[-1], MODEL]:
        assert (await admission.resolve(name)).name == name
    assert noted.resolved == [MODEL, *made_up]  # each once so far: the last was still kept, the default for good
    await admission.resolve(made_up[0])  # the oldest made-up name was let go
    assert noted.resolved == [MODEL, *made_up, made_up[0]]


def drawn_chain(doc: str, heading: str) -> list[str]:
    """The names the chain drawing under `heading` links with arrows, in order."""
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    return re.findall(r"(\w+) ─▶", text[text.index(heading):].split("```")[1])


def test_the_layout_drawings_show_every_step_of_the_chain_in_order(provider, tmp_path) -> None:
    """Both drawings of the chain (the README's Layout, docs/layout.md's "The call") name each step of
    `standard_chain` (conversations and budgets on, so none is left out), in its order, then `Send`."""
    from hive_mcp.spend import Budgets, Spend
    from hive_mcp.spend.sqlite_backend import SQLiteBackend

    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets.from_settings(day=1.0, month=None, section=None),
                  provider)  # fmt: skip
    conversations = Conversations(SQLiteStore(tmp_path / "c.sqlite3"), provider, ConversationLocks())
    chain = standard_chain(
        provider, Limits(), StaticCatalogue(MODEL), default_model=MODEL, conversations=conversations, spend=spend
    )
    steps = [getattr(s.__wrapped__, "__name__", type(s.__wrapped__).__name__) for s in chain.steps]
    names = [name[0].upper() + name[1:] for name in [*steps, type(chain.last).__name__]]
    assert names == ["Admission", "Files", "Conversations", "Metering", "Gather", "Slot", "Send"]
    for doc, heading in (("README.md", "## Layout"), ("docs/layout.md", "## The call")):
        assert [name for name in drawn_chain(doc, heading) if name in names] == names, doc
