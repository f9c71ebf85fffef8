"""Tasks: what running `complete` as a task costs the client, in process, through the SDK's real client.

Rows (the issue's figures):
* creation to first `tasks/get` answer: a 2025-11-25 `tools/call` with `task`, then `tasks/get` for its id, timed
  from sending the first to receiving the second (median; no target).
* a 1 s upstream answer, direct and as a task, calls alternated, same input: the 2026-07-28 extension polled at
  the interval the server suggests (`pollIntervalMs`), and the 2025-11-25 `tasks/result` (which waits). Target:
  a task's wall time at the client within 5% of the direct call's (ratio of medians per block, as `overhead`).

The 2026 rows send an input long enough (`tasks.policy.LONG_INPUT_CHARS`) for the server to make the call a task
unasked; the direct call is the same request from a client that did not declare the extension.
Run it as a section of bench.run: `python -m bench.run --only tasks [--quick]`.
"""

from __future__ import annotations

import time
from typing import Any

from mcp import Client

from bench.common import MODE, Bench, Row, Section, interleaved, per_call_ms, provider
from bench.overhead import block_ratios
from bench.upstream_proc import TEXT_REPLY, slow_model
from harness.task_requests import raw, until_ended

SLOW_MS = 1000
WITHIN = 1.05
CREATE_TO_GET = "task creation to first tasks/get answer (2025-11-25)"
DIRECT = "1 s upstream: complete, direct"
POLLED = "1 s upstream: 2026 task, polled at pollIntervalMs"
RESULT = "1 s upstream: 2025-11-25 task, tasks/result"


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import DumpStore
    from hive_mcp.mcp import build_server
    from hive_mcp.tasks import TaskEngine
    from hive_mcp.tasks.policy import LONG_INPUT_CHARS
    from hive_mcp.tasks.sqlite_store import SQLiteTaskStore

    work = bench.dir("tasks")
    store = DumpStore(work / "dumps")
    engine = TaskEngine(SQLiteTaskStore(work / "tasks.sqlite3"))
    server = build_server(provider(bench, store), store, default_model=slow_model(SLOW_MS), tasks=engine)
    fast = {"prompt": "hi", "model": "openai/bench-text"}
    slow = {"prompt": "x" * LONG_INPUT_CHARS, "model": slow_model(SLOW_MS)}

    async with Client(server, mode=MODE, cache=None) as legacy, Client(server, mode="auto", cache=None) as modern:

        async def create_then_get() -> float:
            start = time.perf_counter()
            created = await raw(legacy, "tools/call", {"name": "complete", "arguments": fast, "task": {}})
            await raw(legacy, "tasks/get", {"taskId": created["task"]["taskId"]})
            elapsed = (time.perf_counter() - start) * 1000
            await raw(legacy, "tasks/result", {"taskId": created["task"]["taskId"]})  # not left running
            return elapsed

        async def direct() -> None:
            got = await raw(modern, "tools/call", {"name": "complete", "arguments": slow}, tasks=False)
            _check(got)

        async def polled() -> None:
            created = await raw(modern, "tools/call", {"name": "complete", "arguments": slow})
            if created.get("resultType") != "task":
                raise AssertionError("the 2026 call did not become a task: the row would measure a direct call")
            _check((await until_ended(modern, created["taskId"]))["result"])

        async def result() -> None:
            created = await raw(legacy, "tools/call", {"name": "complete", "arguments": slow, "task": {}})
            _check(await raw(legacy, "tasks/result", {"taskId": created["task"]["taskId"]}))

        creation = await interleaved({CREATE_TO_GET: create_then_get}, bench.reps(200, 30), warmup=5)
        walls = await interleaved(
            {DIRECT: per_call_ms(direct), POLLED: per_call_ms(polled), RESULT: per_call_ms(result)},
            bench.reps(20, 5), warmup=1, blocks=bench.reps(5, 1),
        )  # fmt: skip
    await engine.aclose()
    rows = [Row(CREATE_TO_GET, "ms", creation[CREATE_TO_GET]), *(Row(n, "ms", s) for n, s in walls.items())]
    for name, label in ((POLLED, "ratio: 2026 task polled / direct"), (RESULT, "ratio: 2025-11-25 task / direct")):
        ratio = Row(label, "x", block_ratios(walls[name], walls[DIRECT], blocks=bench.reps(5, 1)))
        rows.append(ratio.at_most(WITHIN, f"within {round((WITHIN - 1) * 100)}% of the direct call"))
    return Section("tasks", rows)


def _check(result: dict[str, Any]) -> None:
    text = (result.get("content") or [{}])[0].get("text")
    if text != TEXT_REPLY:
        raise AssertionError(f"unexpected reply {text!r}: the row would measure something else")

