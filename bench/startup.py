"""Start-up: how soon a freshly spawned stdio server is useful.

A desktop client spawns `hive-mcp` and waits for the initialize result, often
briefly. Timed from the spawn: the initialize result, then tools/list, then the
first `complete` result (which may wait for litellm to finish loading). Each
round is a new process. Target: initialize within 1.0 s (median).
"""

from __future__ import annotations

from bench.calls import complete
from bench.common import Bench, BenchError, Row, Section, stdio_server

TOOLS = {"complete", "stream_complete", "list_failed_requests"}
INITIALIZE_S = 1.0


async def run(bench: Bench) -> Section:
    initialize: list[float] = []
    tools: list[float] = []
    first: list[float] = []
    for i in range(bench.reps(5, 2)):
        async with stdio_server(bench, f"startup-{i}") as served:
            initialize.append(served.ready_s)
            listed = await served.client.list_tools()
            tools.append(served.since_spawn_s())
            if missing := TOOLS - {t.name for t in listed.tools}:
                raise BenchError(f"tools/list lacks {sorted(missing)}")
            await complete(served.client)
            first.append(served.since_spawn_s())
    rows = [
        Row("spawn -> initialize result (stdio)", "s", initialize).at_most(INITIALIZE_S, f"{INITIALIZE_S} s"),
        Row("spawn -> tools/list result", "s", tools),
        Row("spawn -> first complete result", "s", first),
    ]
    return Section("startup", rows)
