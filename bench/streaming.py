"""Streaming: throughput of a fast stream, and the latency of each chunk of a paced one.

(a) The upstream sends 2,000 chunks as fast as it can. Rate: characters of text
delivered per second, from the call's start to its end (for `stream_complete`,
the characters of the progress messages, up to the result). Target: at least
90% of litellm's own rate in-process.

A raw httpx read of the same stream, parsing each SSE line's JSON, is the floor
of both: what any client pays before litellm does anything.

(b) The upstream sends 50 chunks a second, each stamped with its send time.
Latency: from the upstream writing a chunk to its text reaching the client's
progress callback (for litellm alone, its loop). Targets: median at most 2 ms,
and at most 0.5 ms above litellm alone's median in the same run (issue 13). The
same paced stream through a bare SDK server over HTTP, and through the least
server the SDK's client can stream from over each transport
(bench/least_server.py), is shown beside them, with no target: the least
server's latency is what the extra process, the pipe or socket and the SDK's
client cost before any server framework does anything.

Both check what `stream_complete` promises: the progress messages, joined, are
the final content, in order. A mismatch is a bug, reported as a problem.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import partial

import httpx

from bench.calls import Checks, Streamer, StreamRun, litellm_stream, stream_complete
from bench.common import USER, Bench, Row, Section, http_server, interleaved, provider, stdio_server
from bench.upstream_proc import paced_model, stream_model, stream_text

CHUNKS = 2000
PACE = 50  # chunks a second
RATE_SHARE = 0.9
LATENCY_MS = 2.0
ABOVE_LITELLM_MS = 0.5
MAX_TOKENS = 16_384
"""Room for the whole fast stream (about 4,000 tokens): the default max_tokens would cut it."""
RAW = "raw httpx (floor)"
LITELLM = "litellm.acompletion in-process"
PROVIDER = "LiteLLMProvider.stream in-process"
STDIO = "stream_complete over stdio"
HTTP = "stream_complete over HTTP"
BARE = "bare SDK server over HTTP"
"""The paced stream through bench/bare_server.py (litellm's deltas sent as progress notifications, nothing else):
what the SDK's own streamable HTTP path adds to a chunk's latency, beside the target. No target of its own."""
LEAST_STDIO = "least server over stdio"
LEAST_HTTP = "least server over HTTP"
LEAST = ("-m", "bench.least_server")
"""bench/least_server.py: litellm's deltas written as progress notifications with no server framework."""
BESIDE = (BARE, LEAST_STDIO, LEAST_HTTP)
"""Servers whose chunk latency is shown beside the targets, with none of their own (and no rate row)."""


async def raw_stream(http: httpx.AsyncClient, bench: Bench, model: str) -> StreamRun:
    """The upstream's stream read with httpx: each SSE data line parsed, its delta text a message."""
    run = StreamRun(time.perf_counter_ns())
    body = {"model": model.removeprefix("openai/"), "messages": USER, "stream": True}
    async with http.stream("POST", f"{bench.upstream.base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {") and (choices := json.loads(line[6:])["choices"]):
                if text := choices[0]["delta"].get("content"):
                    run.messages.append((time.perf_counter_ns(), text))
    run.finished_ns = time.perf_counter_ns()
    run.content = run.text
    return run


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import DumpStore
    from hive_mcp.provider import TextDeltaEvent

    llm = provider(bench, DumpStore(bench.dir("streaming") / "dumps"))
    checks = Checks()
    fast, expected = stream_model(CHUNKS), stream_text(CHUNKS)
    paced_chunks = bench.reps(100, 50)
    paced = paced_model(PACE, paced_chunks)

    async def provider_stream(model: str) -> StreamRun:
        run = StreamRun(time.perf_counter_ns())
        async for ev in llm.stream(USER, model=model, max_tokens=MAX_TOKENS):
            if isinstance(ev, TextDeltaEvent):
                run.messages.append((time.perf_counter_ns(), ev.content))
        run.finished_ns = time.perf_counter_ns()
        run.content = run.text
        return run

    def rate(variant: str, stream: Streamer) -> Callable[[], Awaitable[float]]:
        async def sample() -> float:
            streamed = await stream(fast)
            checks.check_stream(variant, streamed, expected=expected)
            return len(streamed.text) / streamed.elapsed_s

        return sample

    def latency(variant: str, stream: Streamer) -> Callable[[], Awaitable[list[float]]]:
        async def sample() -> list[float]:
            streamed = await stream(paced)
            checks.check_stream(variant, streamed, stamps=paced_chunks)
            return streamed.latencies_ms()

        return sample

    async with (
        httpx.AsyncClient() as http,
        stdio_server(bench, "streaming-stdio") as stdio,
        http_server(bench, "streaming-http") as remote,
        http_server(bench, "streaming-bare", launcher=("-m", "bench.bare_server")) as bare,
        stdio_server(bench, "streaming-least-stdio", launcher=LEAST) as least_stdio,
        http_server(bench, "streaming-least-http", launcher=LEAST) as least_http,
    ):
        streams: dict[str, Streamer] = {
            RAW: partial(raw_stream, http, bench),
            LITELLM: partial(litellm_stream, bench),
            PROVIDER: provider_stream,
            STDIO: partial(stream_complete, stdio.client, max_tokens=MAX_TOKENS),
            HTTP: partial(stream_complete, remote.client, max_tokens=MAX_TOKENS),
            BARE: partial(stream_complete, bare.client),
            LEAST_STDIO: partial(stream_complete, least_stdio.client),
            LEAST_HTTP: partial(stream_complete, least_http.client),
        }
        rates = await interleaved(
            {name: rate(name, stream) for name, stream in streams.items() if name not in BESIDE},
            bench.reps(10, 3), warmup=1, blocks=bench.reps(5, 3),
        )  # fmt: skip
        latencies = await interleaved(
            {name: latency(name, streams[name]) for name in (RAW, LITELLM, STDIO, HTTP, *BESIDE)},
            bench.reps(3, 1), warmup=0, blocks=bench.reps(3, 1),
        )  # fmt: skip

    rate_rows = {name: Row(f"rate: {name}, {CHUNKS} chunks", "chars/s", s) for name, s in rates.items()}
    latency_rows = {name: Row(f"chunk latency: {name}, {PACE}/s", "ms", s) for name, s in latencies.items()}
    floor = rate_rows[LITELLM].median
    for name in (STDIO, HTTP):
        rate_rows[name].info["share_of_litellm"] = rate_rows[name].median / floor
        rate_rows[name].at_least(RATE_SHARE * floor, f"{RATE_SHARE:.0%} of litellm")
        latency_rows[name].at_most(
            min(LATENCY_MS, latency_rows[LITELLM].median + ABOVE_LITELLM_MS),
            f"{LATENCY_MS} ms and litellm + {ABOVE_LITELLM_MS} ms",
        )
    return Section(
        "streaming",
        [*rate_rows.values(), *latency_rows.values()],
        details={"text_checks": checks.as_json(), "paced_model": paced, "fast_model": fast},
        problems=checks.problems,
    )
