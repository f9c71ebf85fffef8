"""One question to several models at once (`models` on complete and stream_complete), and a judge over their
answers: the SDK's real Client in-process, a models config through litellm's Router and real HTTP path to the
scripted upstream, conversations and the spend ledger on real SQLite files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from harness.shapes import azure_filtered_reply
from harness.upstream import RecordedRequest, Reply, Upstream
from hive_mcp.mcp.results import call_facts
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.provider.facts import ConfigCatalogue
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.results.sqlite_store import SQLiteResults
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from tests.clients import Progress, connect, mcp_server, text_of, until
from tests.conftest import FAST_RETRY
from tests.paged_answers import long_answer, read_text

pytestmark = pytest.mark.anyio

DEPLOYED = {
    "alpha": "gpt-4o-mini", "beta": "gpt-4o", "gamma": "gpt-4.1-mini", "delta": "gpt-4.1-nano", "judge": "gpt-4.1",
}  # fmt: skip
"""Each group of the config and the model its one deployment sends (what the upstream sees as `model`)."""
GROUP_OF = {model: group for group, model in DEPLOYED.items()}
THREE = ["alpha", "beta", "gamma"]
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Answers:
    """The upstream's replies by the group a request was sent for; what is not scripted gets the default."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = defaultdict(list)

    def __call__(self, request: RecordedRequest) -> Reply | None:
        group = GROUP_OF.get(request.body.get("model", "")) if isinstance(request.body, dict) else None
        queue = self.replies.get(group or "")
        return queue.pop(0) if queue else None

    def script(self, group: str, *replies: Reply) -> None:
        self.replies[group].extend(replies)


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def up(answers: Answers) -> Iterator[Upstream]:
    with Upstream(Reply.text("unscripted"), reply_for=answers) as server:
        yield server


def by_group(upstream: Upstream) -> dict[str, list[RecordedRequest]]:
    seen: dict[str, list[RecordedRequest]] = defaultdict(list)
    for r in upstream.chat_requests():
        seen[GROUP_OF[r.body["model"]]].append(r)
    return seen


def served(
    up: Upstream, store: DumpStore, tmp_path: Path, *, budgets: dict[str, Any] | None = None, **server: Any
) -> tuple[Any, Spend | None]:
    """A server over the five groups (gamma falls back to delta), keeping conversations; with `budgets` (a
    config's budget section), metered on a SQLite ledger; `server`: more of `build_server`'s arguments."""
    base = f'api_base: "{up.base_url}", api_key: sk-x'
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        + "".join(f"  - model_name: {g}\n    litellm_params: {{model: openai/{m}, {base}}}\n"
                  for g, m in DEPLOYED.items())  # fmt: skip
        + "router_settings: {fallbacks: [{gamma: [delta]}]}\n"
    )
    config = load_config(path, {})
    router, catalogue = ModelRouter(config), ConfigCatalogue(config)
    catalogue.attach(router)
    provider = LiteLLMProvider(model="alpha", router=router, retry=FAST_RETRY, dump_store=store)
    spend = None
    if budgets is not None:
        b = Budgets.from_settings(day=budgets.get("day"), month=None, section=budgets,
                                  names={"caller": ["local"], "model": list(DEPLOYED)})  # fmt: skip
        spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), b, provider)
    conversations = SQLiteStore(tmp_path / "conversations.sqlite3")
    return mcp_server(provider, store, default_model="alpha", conversations=conversations, spend=spend,
                      catalogue=catalogue, **server), spend


def answer_of(result: Any, model: str) -> dict[str, Any]:
    [entry] = [a for a in result.structured_content["answers"] if a["model"] == model]
    return entry


async def test_three_models_are_asked_at_once(up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path) -> None:
    """All three requests reach the upstream while every reply is held: the branches overlap in time."""
    server, _ = served(up, store, tmp_path)
    for g in THREE:
        answers.script(g, Reply.text(f"{g} says four", model=DEPLOYED[g]).held())
    results: list[Any] = []
    async with connect(server, "legacy") as c, anyio.create_task_group() as tg:

        async def ask() -> None:
            results.append(await c.call_tool("complete", {"prompt": "two and two?", "models": THREE}))

        tg.start_soon(ask)
        await until(lambda: len(up.chat_requests()) == 3, "all three requests arrived, none answered yet")
        assert results == []
        up.release()
    [result] = results
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert [a["model"] for a in data["answers"]] == THREE
    for g in THREE:
        entry = answer_of(result, g)
        assert entry["content"] == f"{g} says four" and "error" not in entry
        assert entry["model_group"] == g and entry["deployment"] == f"openai/{DEPLOYED[g]}"
        assert entry["usage"]["input_tokens"] == 11 and entry["usage"]["output_tokens"] == 7
        assert entry["usage"]["cost_usd"] > 0 and entry["latency_ms"] >= 0 and entry["conversation_id"]
    text = text_of(result)
    heads = [text.index(f"## {g}\n{g} says four") for g in THREE]
    assert heads == sorted(heads)  # each answer under its model, in the order asked
    assert call_facts(result)["output_tokens"] == 21  # the totals are the set's


async def test_a_failing_model_does_not_fail_the_others(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    server, _ = served(up, store, tmp_path)
    answers.script("alpha", Reply.text("alpha answers", model=DEPLOYED["alpha"]))
    answers.script("beta", Reply.error(400, "the model refuses this"))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": ["alpha", "beta"], "max_retries": 0})
    assert not result.is_error, text_of(result)
    assert answer_of(result, "alpha")["content"] == "alpha answers"
    failed = answer_of(result, "beta")
    assert failed["error_type"] == "bad_request" and "the model refuses this" in failed["error"], failed
    assert "\n" not in failed["error"] and failed["dump_id"]
    assert "content" not in failed and "conversation_id" not in failed, failed
    assert "## beta\n" in text_of(result) and failed["error"] in text_of(result)


async def test_a_failed_branch_says_what_it_was_charged_and_the_set_counts_it(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    """beta's content filter stopped its reply, whose usage the provider billed: its entry's usage is that
    charge, as its ledger row says, and the set's totals hold it beside alpha's answer."""
    server, spend = served(up, store, tmp_path, budgets={})
    assert spend is not None
    answers.script("alpha", Reply.text("alpha answers", model=DEPLOYED["alpha"]))
    answers.script("beta", azure_filtered_reply(["violence"], content="partial"))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": ["alpha", "beta"], "max_retries": 0})
    assert not result.is_error, text_of(result)
    failed = answer_of(result, "beta")
    assert failed["error_type"] == "content_policy", failed
    rows = {r.group: r for r in spend.settled().calls(EPOCH)}
    beta = rows["beta"].cost / 1e6
    assert failed["usage"] == {"input_tokens": 11, "output_tokens": 7, "cost_usd": beta, "estimated": False}
    facts = call_facts(result)
    assert (facts["input_tokens"], facts["output_tokens"]) == (22, 14)
    assert facts["cost_usd"] == pytest.approx(answer_of(result, "alpha")["usage"]["cost_usd"] + beta, rel=1e-9)


async def test_a_branch_falls_back_within_itself(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    server, _ = served(up, store, tmp_path)
    answers.script("alpha", Reply.text("alpha answers", model=DEPLOYED["alpha"]))
    answers.script("gamma", Reply.error(503))
    answers.script("delta", Reply.text("delta answers for gamma", model=DEPLOYED["delta"]))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": ["alpha", "gamma"], "max_retries": 0})
    assert not result.is_error, text_of(result)
    gamma = answer_of(result, "gamma")
    assert gamma["content"] == "delta answers for gamma" and "error" not in gamma
    assert gamma["model_group"] == "gamma" and gamma["deployment"] == f"openai/{DEPLOYED['delta']}"
    assert {g: len(rs) for g, rs in by_group(up).items()} == {"alpha": 1, "gamma": 1, "delta": 1}


@pytest.mark.parametrize("refusing", ["gamma", "judge"])
async def test_the_budget_refuses_the_whole_set_before_any_request(
    up: Upstream, store: DumpStore, tmp_path: Path, refusing: str
) -> None:
    """One member's budget (a model's, or the judge's) does not fit: no model is asked, and what the others
    reserved is released."""
    server, spend = served(up, store, tmp_path, budgets={"day": 1.0, "models": {refusing: {"day": 0.000001}}})
    assert spend is not None
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": THREE, "judge": "judge", "max_tokens": 50})
    assert result.is_error
    text = text_of(result)
    assert refusing in text and "budget" in text and "\n" not in text, text
    assert up.chat_requests() == []
    state = spend.settled().state(list(spend.budgets.items), spend.clock())
    assert all(held == (0, 0) for held in state.values()), state  # nothing spent, nothing left held


async def test_the_judges_hold_outlasts_the_wait_for_the_answers(
    up: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    """The judge reserves before any model is asked and is sent only after they answer: what it holds lasts
    through the models' deadline as well as its own."""
    server, spend = served(up, store, tmp_path, budgets={"day": 1.0})
    assert spend is not None
    held: list[Any] = []
    reserve = spend.backend.reserve

    def seen(r: Any, budgets: Any) -> Any:
        held.append(r)
        return reserve(r, budgets)

    spend.backend.reserve = seen  # type: ignore[method-assign]
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": ["alpha", "beta"], "judge": "judge",
                                                "deadline_s": 50})  # fmt: skip
    assert not result.is_error, text_of(result)
    leases = {r.group: r.expires - r.start for r in held}
    assert leases["judge"].total_seconds() >= leases["alpha"].total_seconds() + 50, leases


async def test_the_judge_reads_every_answer_and_gives_a_verdict(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    server, spend = served(up, store, tmp_path, budgets={"day": 1.0})
    for g in THREE:
        answers.script(g, Reply.text(f"the answer of {g}", model=DEPLOYED[g]))
    answers.script("judge", Reply.text("beta is best", model=DEPLOYED["judge"]),
                   Reply.text("alpha is best", model=DEPLOYED["judge"]))  # fmt: skip
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "what is love?", "models": THREE, "judge": "judge"})
        custom = await c.call_tool("complete", {
            "prompt": "what is love?", "models": ["alpha", "beta"], "judge": "judge",
            "judge_prompt": "Pick the shortest answer.",
        })  # fmt: skip
    assert not result.is_error, text_of(result)
    first, second = by_group(up)["judge"]
    asked = str(first.messages)
    assert "what is love?" in asked and all(f"the answer of {g}" in asked and g in asked for g in THREE)
    verdict = result.structured_content["verdict"]
    assert verdict["content"] == "beta is best" and verdict["model"] == "judge"
    assert verdict["usage"]["output_tokens"] == 7 and verdict["usage"]["cost_usd"] > 0
    assert text_of(result).rstrip().endswith("beta is best")
    assert "Pick the shortest answer." in str(second.messages) and "Pick the shortest" not in asked
    assert custom.structured_content["verdict"]["content"] == "alpha is best"
    assert spend is not None and len(spend.settled().calls(EPOCH)) == 3 + 1 + 2 + 1


@pytest.mark.parametrize("answered", [1, 0], ids=["one-answer", "no-answer"])
async def test_the_judge_is_not_asked_unless_two_models_answered(
    answered: int, up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    """With fewer than two answers there is nothing to compare: the judge's request is never sent (nor paid
    for), and the verdict says why in one line."""
    server, spend = served(up, store, tmp_path, budgets={"day": 1.0})
    answers.script("alpha", Reply.text("alpha answers", model=DEPLOYED["alpha"]) if answered else Reply.error(400))
    answers.script("beta", Reply.error(400, "the model refuses this"))
    answers.script("judge", Reply.text("alpha is best", model=DEPLOYED["judge"]))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", "models": ["alpha", "beta"], "judge": "judge",
                                                "max_retries": 0})  # fmt: skip
    assert "judge" not in by_group(up)
    line = result.structured_content["verdict"]["error"]
    assert line.startswith("judge: ") and line.endswith("no request was sent") and "\n" not in line, line
    assert ("only alpha answered" if answered else "no model answered") in line, line
    assert spend is not None and [r.group for r in spend.settled().calls(EPOCH)].count("judge") == 0


async def test_streamed_answers_are_tagged_with_their_model(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    server, _ = served(up, store, tmp_path)
    words = {g: [f"{g}-{i} " for i in range(6)] for g in THREE}
    for g in THREE:
        answers.script(g, Reply.stream(words[g], model=DEPLOYED[g], delay=0.002))
    answers.script("judge", Reply.stream(["all ", "agree"], model=DEPLOYED["judge"]))
    progress = Progress()
    async with connect(server, "legacy") as c:
        result = await c.call_tool(
            "stream_complete", {"prompt": "count", "models": THREE, "judge": "judge"}, progress_callback=progress
        )
    assert not result.is_error, text_of(result)
    messages = [m for _, m in progress.items if m]
    tags = [f"{g}: " for g in THREE] + ["judge: "]
    assert messages and all(any(m.startswith(t) for t in tags) for m in messages), messages
    for g in THREE:
        joined = "".join(m[len(g) + 2 :] for m in messages if m.startswith(f"{g}: "))
        assert joined == "".join(words[g]) == answer_of(result, g)["content"]
    verdict = "".join(m[len("judge: ") :] for m in messages if m.startswith("judge: "))
    assert verdict == "all agree" == result.structured_content["verdict"]["content"]
    assert progress.increasing()


async def test_each_models_conversation_continues_on_its_own(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    server, _ = served(up, store, tmp_path)
    answers.script("alpha", Reply.text("alpha first", model=DEPLOYED["alpha"]))
    answers.script("beta", Reply.text("beta first", model=DEPLOYED["beta"]))
    async with connect(server, "legacy") as c:
        first = await c.call_tool("complete", {"prompt": "first question", "models": ["alpha", "beta"]})
        ids = {g: answer_of(first, g)["conversation_id"] for g in ("alpha", "beta")}
        assert len(set(ids.values())) == 2, ids
        then = await c.call_tool("complete", {"prompt": "go on", "model": "beta", "conversation_id": ids["beta"]})
        # A set continuing one conversation: each model continues a fork of it, the original stays.
        both = await c.call_tool(
            "complete", {"prompt": "and?", "models": ["alpha", "beta"], "conversation_id": ids["alpha"]}
        )
        again = await c.call_tool("complete", {"prompt": "last", "model": "alpha", "conversation_id": ids["alpha"]})
    assert not then.is_error and not both.is_error and not again.is_error, text_of(both)
    follow_up = by_group(up)["beta"][1].messages
    assert [m["content"] for m in follow_up] == ["first question", "beta first", "go on"]
    for r in by_group(up)["alpha"][1:2] + by_group(up)["beta"][2:3]:
        assert [m["content"] for m in r.messages[:3]] == ["first question", "alpha first", "and?"]
    forks = {answer_of(both, g)["conversation_id"] for g in ("alpha", "beta")}
    assert len(forks) == 2 and ids["alpha"] not in forks
    assert [m["content"] for m in by_group(up)["alpha"][2].messages] == ["first question", "alpha first", "last"]


@pytest.mark.parametrize(
    "args, says",
    [
        ({"models": ["alpha"]}, "models: "),
        ({"models": ["alpha"] * 2}, "models[1]: 'alpha' is named twice"),
        ({"models": ["alpha", "beta"], "model": "alpha"}, "models: give model or models, not both"),
        ({"judge": "judge"}, "judge: "),
        ({"models": [f"m{i}" for i in range(9)]}, "models: "),
        ({"models": ["alpha", "nonesuch"]}, "nonesuch"),
    ],
    ids=["one", "duplicate", "with-model", "judge-alone", "nine", "unknown"],
)
async def test_a_bad_set_is_refused_in_one_line_before_any_request(
    up: Upstream, store: DumpStore, tmp_path: Path, args: dict[str, Any], says: str
) -> None:
    server, _ = served(up, store, tmp_path)
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hi", **args})
    assert result.is_error and says in text_of(result) and "\n" not in text_of(result), text_of(result)
    assert up.chat_requests() == []


async def test_answers_too_big_for_one_reply_are_each_kept_whole_and_read_back_exactly(
    up: Upstream, answers: Answers, store: DumpStore, tmp_path: Path
) -> None:
    """A set's answers share the inline limit (halved: structured content holds each answer twice, in its entry
    and in the text). A short answer stays whole; each longer one is kept as a result of its own, its entry
    holding its first part with `truncated`, `parts`, `result_uri` and `omitted_tokens`, and the text naming it."""
    limit = 400
    results = SQLiteResults(tmp_path / "results.sqlite3", ttl_s=60)
    server, _ = served(up, store, tmp_path, results=results, result_inline_tokens=limit)
    long_alpha, long_verdict = long_answer(200), long_answer(150)[::-1]
    answers.script("alpha", Reply.text(long_alpha, model=DEPLOYED["alpha"]))
    answers.script("beta", Reply.text("beta is brief", model=DEPLOYED["beta"]))
    answers.script("judge", Reply.text(long_verdict, model=DEPLOYED["judge"]))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "go long", "models": ["alpha", "beta"], "judge": "judge",
                                                "max_tokens": 8000})  # fmt: skip
        kept = {e["model"]: e for e in [*result.structured_content["answers"], result.structured_content["verdict"]]}
        whole = {m: await read_text(c, e["result_uri"]) for m, e in kept.items() if "result_uri" in e}
        parts = {m: [await read_text(c, f"{kept[m]['result_uri']}?part={n}") for n in range(1, kept[m]["parts"] + 1)]
                 for m in whole}  # fmt: skip
    assert not result.is_error
    s = result.structured_content
    assert whole == {"alpha": long_alpha, "judge": long_verdict}  # each kept exactly, as its own result
    assert kept["beta"]["content"] == "beta is brief" and "truncated" not in kept["beta"]
    counter = LiteLLMProvider(model="openai/gpt-4o-mini", api_key="sk-x")  # litellm's count, as paging's
    inline = sum(counter.count_text(e["content"], e["deployment"]) for e in kept.values())
    assert inline <= limit // 2, inline
    omitted = 0
    for m, e in ((m, kept[m]) for m in whole):
        assert e["truncated"] is True and e["parts"] == len(parts[m]) > 1
        assert "".join(parts[m]) == whole[m] and e["content"] == parts[m][0] != whole[m]
        assert e["omitted_tokens"] == counter.count_text(whole[m], e["deployment"]) - counter.count_text(
            e["content"], e["deployment"])
        omitted += e["omitted_tokens"]
    assert s["truncated"] is True and s["omitted_tokens"] == omitted  # the set's: every entry's left out
    assert "result_uri" not in s and "parts" not in s  # each entry names its own
    assert s["content"].count("## ") == 3 and long_alpha not in s["content"]
    [text, *links] = result.content
    assert [link.uri for link in links] == [kept["alpha"]["result_uri"], kept["judge"]["result_uri"]]
    for m in whole:  # the text holds each first part, then the line naming where the rest is
        assert kept[m]["content"] in text.text and kept[m]["result_uri"] in text.text
    assert "read_result" in text.text and long_alpha not in text.text and "beta is brief" in text.text


async def test_the_call_layer_fans_out_with_no_mcp_in_sight(upstream: Upstream, store: DumpStore) -> None:
    """`calls.run` on a `Call` naming `many`, down `standard_chain` to litellm's real HTTP path: every model's
    outcome, in the order asked; a chain without the gate is not given a fan-out to hang on."""
    from hive_mcp.calls import Call, Chain, Many, run, standard_chain
    from hive_mcp.limits import Limits
    from hive_mcp.llms.static import StaticCatalogue

    model = "openai/gpt-4o-mini"
    provider = LiteLLMProvider(model=model, api_key="sk-x", api_base=upstream.base_url, retry=FAST_RETRY,
                               dump_store=store)  # fmt: skip
    chain = standard_chain(provider, Limits(), StaticCatalogue(model), default_model=model)
    upstream.script(Reply.text("same answer"), Reply.text("same answer"))
    call = Call(caller="alice", messages=({"role": "user", "content": "hi"},), many=Many((model, "openai/gpt-4o")))
    result = await run(chain, call)
    assert [a.model for a in result.answers] == [model, "openai/gpt-4o"]  # type: ignore[union-attr]
    assert {r.body["model"] for r in upstream.chat_requests()} == {"gpt-4o-mini", "gpt-4o"}
    with pytest.raises(TypeError, match="gather"):
        await run(Chain([], chain.last), call)


def test_a_set_over_stdio_from_a_config(tmp_path: Path) -> None:
    """`python -m hive_mcp --config` as a subprocess, the SDK's real client over stdio: two groups asked at once,
    each answered by its own upstream, the judge by the first."""
    from tests.stdio_servers import DEP_KEY, stdio_session

    with Upstream(Reply.text("one says yes")) as one, Upstream(Reply.text("two says no")) as two:
        config = tmp_path / "config.yaml"
        config.write_text("model_list:\n" + "".join(
            f'  - model_name: {name}\n    litellm_params: {{model: openai/{name}-model, api_base: "{up.base_url}", '
            "api_key: os.environ/DEP_KEY}\n"
            for name, up in (("one", one), ("two", two))
        ))  # fmt: skip
        session, errlog_path, errlog = stdio_session(config, tmp_path, "fanout")
        try:
            result = session.run(lambda c: c.call_tool("complete", {"prompt": "yes?", "models": ["one", "two"],
                                                                    "judge": "one"}))  # fmt: skip
        finally:
            session.close()
            errlog.close()
    assert not result.is_error, text_of(result)
    assert [(a["model"], a["content"]) for a in result.structured_content["answers"]] == [
        ("one", "one says yes"), ("two", "two says no")
    ]
    assert result.structured_content["verdict"]["content"] == "one says yes"
    assert "two says no" in str(one.chat_requests()[-1].messages)  # the judge read the other's answer
    assert DEP_KEY not in errlog_path.read_text() and DEP_KEY not in text_of(result)
