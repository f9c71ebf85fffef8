"""Memory: the stdio server's resident size over thousands of `complete` calls.

RSS (VmRSS) after the handshake, after the first call (litellm loaded), after a
warm-up of 100 calls, then every tenth of the run. Growth is measured from the
warm-up, the fairest baseline (caches and pools filled; both are reported), and
the target is at most 10 MB.
"""

from __future__ import annotations

from bench.calls import complete
from bench.common import Bench, Row, Section, rss_mb, stdio_server

WARMUP = 100
GROWTH_MB = 10.0


async def run(bench: Bench) -> Section:
    calls = bench.reps(5000, 500)
    async with stdio_server(bench, "memory") as served:
        rss = {"after initialize": rss_mb(served.pid)}
        await complete(served.client)
        rss["after the first complete"] = rss_mb(served.pid)
        for _ in range(WARMUP - 1):
            await complete(served.client)
        rss[f"after a warm-up of {WARMUP} calls"] = warm = rss_mb(served.pid)
        trace = []
        for i in range(1, calls + 1):
            await complete(served.client)
            if i % (calls // 10) == 0:
                trace.append({"calls_after_warmup": i, "rss_mb": rss_mb(served.pid)})
        rss[f"after {calls} more calls"] = end = rss_mb(served.pid)

    rows = [Row(f"server RSS {when}", "MB", [mb]) for when, mb in rss.items()]
    rows.append(
        Row(f"RSS growth over {calls} calls, from warm-up", "MB", [end - warm]).at_most(GROWTH_MB, f"{GROWTH_MB} MB")
    )
    since_first = end - rss["after the first complete"]
    rows.append(Row(f"RSS growth over {calls + WARMUP - 1} calls, from the first", "MB", [since_first]))
    return Section("memory", rows, details={"transport": "stdio", "rss_trace": trace})
