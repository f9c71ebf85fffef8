"""Benchmarks: `python -m bench.run [--quick] [--out FILE]`.

Everything runs against the scripted upstream on 127.0.0.1, so the numbers are
hive-mcp's own overhead, not a provider's. Prints a table and writes JSON.
Timed here, never in tests: a noisy machine makes timed tests flaky.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from hive_mcp.dumps import DumpStore, FailureDump, make_dump_id  # noqa: E402
from hive_mcp.provider import LiteLLMProvider, RetryPolicy, TextDeltaEvent  # noqa: E402
from tests.upstream import Reply, Upstream  # noqa: E402

USER = [{"role": "user", "content": "hi"}]


def summarize(name: str, samples: list[float], unit: str = "ms", **extra: Any) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "name": name,
        "unit": unit,
        "n": len(samples),
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "min": ordered[0],
        **extra,
    }


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(min(10, n)):  # warm-up: connection pools, litellm caches
        await fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def bench_complete(up: Upstream, provider: LiteLLMProvider, n: int) -> list[dict[str, Any]]:
    up._default = Reply.text("hello")  # noqa: SLF001 - every request gets the same reply
    results = []
    async with httpx.AsyncClient() as client:
        body = {"model": "gpt-4o-mini", "messages": USER}

        async def raw() -> None:
            r = await client.post(f"{up.base_url}/chat/completions", json=body)
            r.json()

        results.append(summarize("raw httpx POST (floor)", await timed(n, raw)))

    async def via_provider() -> None:
        await provider.acomplete(USER)

    results.append(summarize("LiteLLMProvider.acomplete", await timed(n, via_provider)))
    return results


async def bench_stream(up: Upstream, provider: LiteLLMProvider, chunks: int, rounds: int) -> list[dict[str, Any]]:
    import litellm

    up._default = Reply.stream([f"tok{i} " for i in range(chunks)])  # noqa: SLF001
    floor = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = await litellm.acompletion(
            model="openai/gpt-4o-mini", api_base=up.base_url, api_key="bench-key", messages=USER, stream=True
        )
        got = sum([1 async for c in response if c.choices and c.choices[0].delta.content])
        floor.append(got / (time.perf_counter() - start))
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        got = 0
        async for event in provider.stream(USER):
            if isinstance(event, TextDeltaEvent):
                got += 1
        rates.append(got / (time.perf_counter() - start))
    return [
        summarize("litellm.acompletion stream (floor)", floor, unit="chunks/s", chunks_per_stream=chunks),
        summarize("LiteLLMProvider.stream", rates, unit="chunks/s", chunks_per_stream=chunks),
    ]


def bench_dump_list(count: int, rounds: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = DumpStore(Path(tmp), max_count=None, max_bytes=None, max_age=None)
        base = FailureDump(
            timestamp=datetime.now(timezone.utc), model="openai/gpt-4o-mini", error_type="rate_limit",
            outcome="gave_up", attempts=[], messages=USER,
        )
        # Writes go through the real store at its default retention (500 dumps)...
        writer = DumpStore(Path(tmp) / "retained")
        start = time.perf_counter()
        for _ in range(600):
            writer.write(base)
        write_ms = (time.perf_counter() - start) * 1000 / 600
        # ...and the big directory is made by copying one real dump under many ids.
        first = store.write(base)
        assert first is not None
        payload = (Path(tmp) / f"{first}.json").read_bytes()
        for i in range(count - 1):
            when = datetime.fromtimestamp(1.7e9 + i, timezone.utc)
            (Path(tmp) / f"{make_dump_id(when, 'rate_limit', base.model)}.json").write_bytes(payload)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            store.list(limit=20)
            samples.append((time.perf_counter() - start) * 1000)
        filtered = []
        for _ in range(rounds):
            start = time.perf_counter()
            store.list(limit=20, model="openai/gpt-4o-mini", error_type="rate_limit")
            filtered.append((time.perf_counter() - start) * 1000)
    return [
        summarize(f"DumpStore.list first page of {count}", samples, dumps=count, write_ms_each_at_500_retained=round(write_ms, 3)),
        summarize(f"DumpStore.list filtered, {count}", filtered, dumps=count),
    ]


async def main_async(quick: bool) -> list[dict[str, Any]]:
    n = 50 if quick else 300
    with Upstream() as up, tempfile.TemporaryDirectory() as tmp:
        provider = LiteLLMProvider(
            model="openai/gpt-4o-mini", api_key="bench-key", api_base=up.base_url,
            retry=RetryPolicy(time_scale=0.0), dump_store=DumpStore(Path(tmp)),
        )
        results = await bench_complete(up, provider, n)
        results.extend(await bench_stream(up, provider, 200 if quick else 1000, 3 if quick else 10))
    results.extend(bench_dump_list(1000 if quick else 10000, 20 if quick else 100))
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':44} {'median':>12} {'p95':>12} {'unit':>9} {'n':>6}"]
    for r in results:
        lines.append(f"{r['name']:44} {r['median']:12.3f} {r['p95']:12.3f} {r['unit']:>9} {r['n']:6}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    results = asyncio.run(main_async(args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "when": datetime.now(timezone.utc).isoformat()}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(table(results))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
