"""Several models at once: `complete` with `models` (in-process `Client(server)`), each model 1 s to answer.

1. One call to one such model: the reference, measured in the same run.
2. `models` naming four such models. Target (the issue): wall time at most 1.1 s,
   the slowest model's rather than the sum.
3. The same four and a judge that also takes 1 s. Target: at most 1.1 s plus the
   judge (the reference call's median).
"""

from __future__ import annotations

from mcp import Client

from bench.calls import complete
from bench.common import MODE, Bench, Row, Section, inprocess_server, interleaved, per_call_ms
from bench.upstream_proc import slow_model

MODEL_MS = 1000
FOUR = [slow_model(MODEL_MS, name) for name in ("a", "b", "c", "d")]
JUDGE = slow_model(MODEL_MS, "judge")
ONE = f"complete, one model of {MODEL_MS / 1000:g} s"
SET = f"models: 4 of {MODEL_MS / 1000:g} s each"
JUDGED = f"models: 4 of {MODEL_MS / 1000:g} s, and a judge of {MODEL_MS / 1000:g} s"
TARGET_MS = 1100.0


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import DumpStore

    server = inprocess_server(bench, DumpStore(bench.dir("fanout") / "dumps"))
    async with Client(server, mode=MODE, cache=None) as c:
        samples = await interleaved(
            {
                ONE: per_call_ms(lambda: complete(c, model=FOUR[0])),
                SET: per_call_ms(lambda: complete(c, models=FOUR)),
                JUDGED: per_call_ms(lambda: complete(c, models=FOUR, judge=JUDGE)),
            },
            bench.reps(10, 3),
            warmup=1,  # litellm's first call imports the rest of it; a second-long call needs no more
        )
    one = Row(ONE, "ms", samples[ONE])
    rows = [
        one,
        Row(SET, "ms", samples[SET]).at_most(TARGET_MS, f"{TARGET_MS:g} ms"),
        Row(JUDGED, "ms", samples[JUDGED]).at_most(TARGET_MS + one.median, f"{TARGET_MS:g} ms + one model"),
    ]
    return Section("fanout", rows)
