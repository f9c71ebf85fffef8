"""Routing through a models config: what the Router costs per call, and what it buys when a deployment is rate-limited.

1. `complete` (in-process `Client(server)`) through a config with one deployment
   against the same call without a config, interleaved, against the shared upstream.
   Target (the issue): routing adds at most 0.5 ms median per call.
2. A group of two deployments where one answers every other request with 429
   (Retry-After: 1 s), the other always answers: sequential `complete` calls,
   calls/s and median latency, with routing (the group) against without (the
   rate-limited deployment named directly, so each 429 waits out its Retry-After).
   Both deployments are scripted upstreams in this process.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from mcp import Client

from bench.calls import complete
from bench.common import API_KEY, MODE, Bench, Row, Section, import_litellm, interleaved, per_call_ms
from bench.upstream_proc import TEXT_MODEL
from harness.upstream import RecordedRequest, Reply, Upstream

PLAIN = "complete, no config"
ROUTED = "complete, config with one deployment"
BUDGET_MS = 0.5
RETRY_AFTER_S = 1


def _server(bench: Bench, workdir: Path, config_text: str | None, model: str, api_base: str | None):
    from hive_mcp.dumps import DumpStore
    from hive_mcp.mcp import build_server
    from hive_mcp.llms import load_config
    from hive_mcp.provider import LiteLLMProvider
    from hive_mcp.provider.routing import ModelRouter

    store = DumpStore(workdir / "dumps")
    router = None
    if config_text is not None:
        path = workdir / "config.yaml"
        path.write_text(config_text)
        router = ModelRouter(load_config(path, {}))
    llm = LiteLLMProvider(model=model, api_key=API_KEY, api_base=api_base, dump_store=store, router=router)
    return build_server(llm, store, default_model=model)


def _config(*bases: str, model: str = TEXT_MODEL) -> str:
    entries = "".join(
        f"  - model_name: g\n    litellm_params: {{model: {model}, api_base: \"{base}\", api_key: {API_KEY}}}\n"
        for base in bases
    )
    return f"model_list:\n{entries}"


async def run(bench: Bench) -> Section:
    import_litellm()
    base = bench.upstream.base_url
    plain = _server(bench, bench.dir("routing-plain"), None, TEXT_MODEL, base)
    routed = _server(bench, bench.dir("routing-one"), _config(base), "g", None)
    async with Client(plain, mode=MODE, cache=None) as c1, Client(routed, mode=MODE, cache=None) as c2:
        samples = await interleaved(
            {PLAIN: per_call_ms(lambda: complete(c1)), ROUTED: per_call_ms(lambda: complete(c2))},
            bench.reps(300, 50),
        )
    rows = [Row(PLAIN, "ms", samples[PLAIN]), Row(ROUTED, "ms", samples[ROUTED])]
    floor = rows[0].median
    rows[1].info["above_plain_ms"] = rows[1].median - floor
    rows[1].at_most(floor + BUDGET_MS, f"no config + {BUDGET_MS} ms")
    rows.extend(await _rate_limited(bench))
    return Section("routing", rows)


async def _rate_limited(bench: Bench) -> list[Row]:
    calls = bench.reps(20, 6)
    turn = itertools.count()

    def every_other(request: RecordedRequest) -> Reply | None:
        if request.method != "POST":
            return None
        if next(turn) % 2 == 0:
            return Reply.error(429, "rate limited", headers={"retry-after": str(RETRY_AFTER_S)})
        return Reply.text("hello")

    rows: list[Row] = []
    with Upstream(reply_for=every_other) as limited, Upstream(Reply.text("hello")) as healthy:
        variants = {
            "429 half the time, no routing: calls/s": (None, TEXT_MODEL, limited.base_url),
            "429 half the time, 2-deployment group: calls/s": (_config(limited.base_url, healthy.base_url), "g", None),
        }
        for i, (name, (config_text, model, api_base)) in enumerate(variants.items()):
            server = _server(bench, bench.dir(f"routing-429-{i}"), config_text, model, api_base)
            latencies: list[float] = []
            async with Client(server, mode=MODE, cache=None) as client:
                started = time.perf_counter()
                for _ in range(calls):
                    t0 = time.perf_counter()
                    await complete(client)
                    latencies.append((time.perf_counter() - t0) * 1000)
                elapsed = time.perf_counter() - started
            rows.append(Row(name, "calls/s", [calls / elapsed], info={"calls": calls}))
            rows.append(Row(name.replace("calls/s", "latency"), "ms", latencies))
    return rows
