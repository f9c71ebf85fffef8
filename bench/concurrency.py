"""Concurrency over streamable HTTP: many paced streams through one server at once.

Each call is `stream_complete` on an upstream stream of 100 chunks (--quick: 20)
at 20 ms. 64 at once: wall time against one call alone; target at most 1.25x.
The same pair for litellm alone in this process is the floor: no server does
better than the library it drives; the server's CPU per chunk at 64 streams is at
most 1.2x litellm's own in this process (round by round), shown beside a bare SDK server's (bench/bare_server.py,
each delta one progress notification) from the same rounds. 256 at once: aggregate chunks a second and
the server's CPU time per chunk (/proc), then the same load again under
cProfile, its CPU split by owner (bench/profiling.py) and its top functions
written to bench/results/profile_256.txt.

For every load the JSON has where the time went: when the upstream requests
arrived, when each call's first text reached the client, each chunk's latency
from the upstream to the client (the upstream stamps them), and the CPU time of
the server, the upstream and this process.

The server is started through the profiling launcher throughout, its profiler
off except for that one run; its in-flight limit is raised above 256.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from dataclasses import dataclass
from typing import Any
from functools import partial

import anyio

from bench.calls import Checks, Streamer, StreamRun, litellm_stream, stream_complete
from bench.common import START_S, Bench, BenchError, Row, Section, cpu_s, http_server, percentile
from bench.profiling import Split
from bench.upstream_proc import paced_model

PACE = 50  # chunks a second: one every 20 ms
WIDE, WIDEST = 64, 256
RATIO = 1.25
CPU_RATIO = 1.2
"""Server CPU per streamed chunk at most this many times litellm's own (issue 21)."""
LITELLM = "litellm in-process"
SERVER = "stream_complete HTTP"
BARE = "bare SDK server HTTP"
"""The same streams through a bare SDK server (bench/bare_server.py): litellm's deltas sent as progress
notifications one by one, nothing else. What the SDK's own progress path costs, beside the target."""


@dataclass
class FanOut:
    """One load: streams at once, as the client saw them, what the upstream saw, and the CPU it cost."""

    started_ns: int
    wall_s: float
    runs: list[StreamRun]
    upstream: dict[str, Any]
    """The upstream's stats: the peak of open connections, when each request arrived."""
    cpu_s: dict[str, float]
    """CPU seconds each watched process used during the load."""

    @property
    def chunks(self) -> int:
        return sum(len(r.stamps()) for r in self.runs)

    def cpu_ms_per_chunk(self, who: str) -> float:
        return 1000 * self.cpu_s[who] / self.chunks

    def summary(self) -> dict[str, Any]:
        """Where the time went: when the upstream requests were made, when the first texts came,
        how long each chunk took from the upstream to the client (seconds from the load's start)."""
        requested = [(t - self.started_ns) / 1e9 for t in self.upstream["arrivals_ns"]]
        first = [(r.messages[0][0] - self.started_ns) / 1e9 for r in self.runs if r.messages]
        latency = [ms for r in self.runs for ms in r.latencies_ms()]
        return {
            "wall_s": round(self.wall_s, 3),
            "chunks": self.chunks,
            "upstream_peak_connections": self.upstream["peak"],
            "upstream_request_s": _spread(requested),
            "first_text_s": _spread(first),
            "chunk_latency_ms": _spread(latency),
            "cpu_s": self.cpu_s,
        }


def _spread(values: list[float]) -> dict[str, float]:
    stats = {"median": statistics.median(values), "p90": percentile(values, 0.9), "max": max(values)}
    return {k: round(v, 3) for k, v in stats.items()}


async def fan_out(
    bench: Bench, variant: str, stream: Streamer, calls: int, chunks: int, checks: Checks, watch: dict[str, int]
) -> FanOut:
    """`calls` streams of `chunks` chunks at once, every one checked, and the CPU time of the `watch`ed pids."""
    model = paced_model(PACE, chunks)
    runs: list[StreamRun] = []

    async def one() -> None:
        try:
            runs.append(await stream(model))
        except BenchError as exc:
            checks.record(variant, False, str(exc))

    await bench.upstream.stats(reset=True)
    cpu = {who: cpu_s(pid) for who, pid in watch.items()}
    start = time.perf_counter_ns()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(one)
    wall = (time.perf_counter_ns() - start) / 1e9
    cpu = {who: round(cpu_s(pid) - cpu[who], 3) for who, pid in watch.items()}
    for streamed in runs:
        checks.check_stream(variant, streamed, stamps=chunks)
    return FanOut(start, wall, runs, await bench.upstream.stats(), cpu)


async def run(bench: Bench) -> Section:
    checks = Checks()
    chunks = bench.reps(100, 20)
    rounds = bench.reps(3, 1)
    watch = {"bench": os.getpid(), "upstream": bench.upstream.pid}

    async def load(name: str, stream: Streamer, calls: int, **more: int) -> FanOut:
        return await fan_out(bench, f"{name} x{calls}", stream, calls, chunks, checks, watch | more)

    # The floor: litellm alone in this process, with no server in the way.
    floor = partial(litellm_stream, bench)
    await load(LITELLM, floor, 4)
    floor_alone = [await load(LITELLM, floor, 1) for _ in range(rounds)]

    stats_path = bench.dir("concurrency") / "server.prof"
    launcher = ("-m", "bench.profiling", str(stats_path), "--")
    async with (
        http_server(bench, "concurrency", launcher=launcher, max_in_flight=2 * WIDEST) as served,
        http_server(bench, "concurrency-bare", launcher=("-m", "bench.bare_server")) as bare,
    ):
        server = partial(stream_complete, served.client)
        bare_stream = partial(stream_complete, bare.client)
        await load(SERVER, server, 4)  # warm-up: litellm loaded, connections open
        await load(BARE, bare_stream, 4)
        alone = [await load(SERVER, server, 1) for _ in range(rounds)]
        floor_wide: list[FanOut] = []
        wide: list[FanOut] = []
        bare_wide: list[FanOut] = []
        for _ in range(rounds):  # round by round, so the floor and both servers meet the same spell of the machine
            floor_wide.append(await load(LITELLM, floor, WIDE))
            wide.append(await load(SERVER, server, WIDE, server=served.pid))
            bare_wide.append(await load(BARE, bare_stream, WIDE, server=bare.pid))
        widest = await load(SERVER, server, WIDEST, server=served.pid)

        os.kill(served.pid, signal.SIGUSR1)  # the profiler on, for one more run of the widest load
        await load(SERVER, server, WIDEST)
        os.kill(served.pid, signal.SIGUSR2)  # off, and the stats written
        with anyio.fail_after(START_S):
            while not stats_path.exists():  # renamed into place once whole
                await anyio.sleep(0.05)
        split = Split(stats_path)

    one, many, *more = _wide_rows(SERVER, alone, wide, "server", chunks)
    many.at_most(RATIO * one.median, f"{RATIO}x the x1 wall time")
    # Round by round, the server's CPU per chunk over litellm's own (this process's, running it alone).
    per_chunk = [w.cpu_ms_per_chunk("server") / f.cpu_ms_per_chunk("bench") for w, f in zip(wide, floor_wide)]
    cpu_ratio = Row(f"x{WIDE}: server CPU per chunk / litellm's own", "x", per_chunk)
    cpu_ratio.at_most(CPU_RATIO, f"{CPU_RATIO}x litellm's own")
    bare_per_chunk = [b.cpu_ms_per_chunk("server") / f.cpu_ms_per_chunk("bench") for b, f in zip(bare_wide, floor_wide)]
    bare_ratio = Row(f"x{WIDE}: bare SDK server CPU per chunk / litellm's own", "x", bare_per_chunk)
    rows = [
        *_wide_rows(LITELLM, floor_alone, floor_wide, "bench", chunks),
        one,
        many,
        *more,
        cpu_ratio,
        Row(f"{BARE} x{WIDE}: CPU per chunk (server)", "ms", [b.cpu_ms_per_chunk("server") for b in bare_wide]),
        bare_ratio,
        Row(f"{SERVER} x{WIDEST} concurrent", "s", [widest.wall_s]),
        Row(f"x{WIDEST}: aggregate chunks/s", "chunks/s", [widest.chunks / widest.wall_s]),
        Row(f"x{WIDEST}: server CPU per chunk", "ms", [widest.cpu_ms_per_chunk("server")]),
    ]
    title = f"hive-mcp server, {WIDEST} concurrent stream_complete over streamable HTTP ({chunks} chunks @{PACE}/s)"
    (bench.results_dir / "profile_256.txt").write_text(split.report(title))
    details = {
        "chunks_per_call": chunks,
        "pace_per_s": PACE,
        "ideal_call_s": chunks / PACE,
        LITELLM: {"x1": [f.summary() for f in floor_alone], f"x{WIDE}": [f.summary() for f in floor_wide]},
        SERVER: {
            "x1": [f.summary() for f in alone],
            f"x{WIDE}": [f.summary() for f in wide],
            f"x{WIDEST}": widest.summary(),
        },
        BARE: {f"x{WIDE}": [b.summary() for b in bare_wide]},
        "profile": split.as_json(),
        "text_checks": checks.as_json(),
    }
    return Section("concurrency", rows, details, checks.problems)


def _wide_rows(what: str, alone: list[FanOut], wide: list[FanOut], cpu_of: str, chunks: int) -> list[Row]:
    """One call's wall time; WIDE calls' wall time, with its ratio to one; then their chunks' latency
    (upstream to client) and the CPU per chunk of `cpu_of`."""
    one = Row(f"{what} x1, {chunks} chunks @{PACE}/s", "s", [f.wall_s for f in alone])
    many = Row(f"{what} x{WIDE} concurrent", "s", [f.wall_s for f in wide])
    many.info["ratio_to_x1"] = many.median / one.median
    latency = Row(f"{what} x{WIDE}: chunk latency", "ms", [ms for f in wide for r in f.runs for ms in r.latencies_ms()])
    cpu = Row(f"{what} x{WIDE}: CPU per chunk ({cpu_of})", "ms", [f.cpu_ms_per_chunk(cpu_of) for f in wide])
    return [one, many, latency, cpu]
