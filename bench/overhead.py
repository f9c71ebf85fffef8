"""Call overhead: one short non-streaming reply, from a bare HTTP POST up to `complete` over each transport.

Every variant hits the same upstream, interleaved, so the rows differ only by the
layers in between. Targets (the issue): `complete` over stdio at most 1.0 ms
(median) above litellm.acompletion in-process, over streamable HTTP at most 2.0 ms.

The floor ratio: `complete` over stdio against a bare SDK `MCPServer` tool making the same
`litellm.acompletion` call over stdio (`bench/bare_server.py`), calls alternated; at most 1.10x with
conversations and the ledger on, as they are by default. The same ratio with conversations off is shown
beside it: what the conversation row (its write, in a worker thread, before the answer) costs.
"""

from __future__ import annotations

import statistics

import httpx
from mcp import Client

from bench.calls import complete
from bench.common import (
    API_KEY,
    MODE,
    USER,
    Bench,
    Row,
    Section,
    http_server,
    import_litellm,
    inprocess_server,
    interleaved,
    per_call_ms,
    provider,
    stdio_server,
)
from bench.upstream_proc import TEXT_MODEL, TEXT_REPLY

RAW = "raw httpx POST to the upstream (floor)"
LITELLM = "litellm.acompletion in-process"
PROVIDER = "LiteLLMProvider.acomplete in-process"
INPROC = "complete: Client(server) in-process"
STDIO = "complete over stdio (subprocess)"
HTTP = "complete over streamable HTTP (subprocess)"
BARE = "bare SDK MCPServer + litellm over stdio (floor)"
NO_CONVERSATIONS = "complete over stdio, conversations off"
RATIO = "complete over stdio / bare SDK server (ratio)"
RATIO_NO_CONVERSATIONS = "conversations off / bare SDK server (ratio)"
STDIO_BUDGET_MS = 1.0
HTTP_BUDGET_MS = 2.0
FLOOR_RATIO = 1.10


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import DumpStore

    litellm = import_litellm()
    store = DumpStore(bench.dir("overhead") / "dumps")
    llm = provider(bench, store)
    body = {"model": TEXT_MODEL.removeprefix("openai/"), "messages": USER}

    async def via_litellm() -> None:
        response = await litellm.acompletion(
            model=TEXT_MODEL, api_base=bench.upstream.base_url, api_key=API_KEY, messages=USER
        )
        assert response.choices[0].message.content == TEXT_REPLY

    async with (
        httpx.AsyncClient() as http,
        Client(inprocess_server(bench, store), mode=MODE, cache=None) as inproc,
        stdio_server(bench, "overhead-stdio") as stdio,
        stdio_server(bench, "overhead-bare", launcher=("-m", "bench.bare_server")) as bare,
        stdio_server(bench, "overhead-no-conversations", conversations="off") as plain,
        http_server(bench, "overhead-http") as remote,
    ):

        async def raw() -> None:
            (await http.post(f"{bench.upstream.base_url}/chat/completions", json=body)).json()

        samples = await interleaved(
            {
                RAW: per_call_ms(raw),
                LITELLM: per_call_ms(via_litellm),
                PROVIDER: per_call_ms(lambda: llm.acomplete(USER)),
                INPROC: per_call_ms(lambda: complete(inproc)),
                STDIO: per_call_ms(lambda: complete(stdio.client)),
                BARE: per_call_ms(lambda: complete(bare.client)),
                NO_CONVERSATIONS: per_call_ms(lambda: complete(plain.client)),
                HTTP: per_call_ms(lambda: complete(remote.client)),
            },
            bench.reps(300, 50),
        )

    rows = {name: Row(name, "ms", s) for name, s in samples.items()}
    floor = rows[LITELLM].median
    for row in rows.values():
        row.info["above_litellm_ms"] = row.median - floor
    rows[STDIO].at_most(floor + STDIO_BUDGET_MS, f"litellm + {STDIO_BUDGET_MS} ms")
    rows[HTTP].at_most(floor + HTTP_BUDGET_MS, f"litellm + {HTTP_BUDGET_MS} ms")
    ratio = Row(RATIO, "x", block_ratios(samples[STDIO], samples[BARE]))
    ratio.at_most(FLOOR_RATIO, f"{FLOOR_RATIO}x the bare server")
    plain = Row(RATIO_NO_CONVERSATIONS, "x", block_ratios(samples[NO_CONVERSATIONS], samples[BARE]))
    return Section("overhead", [*rows.values(), ratio, plain])


def block_ratios(ours: list[float], floor: list[float], blocks: int = 10) -> list[float]:
    """The ratio of the medians of each block of calls `interleaved` made one after the other: each a same-run
    ratio, so a slow spell of the machine moves both sides of it."""
    size = max(1, len(ours) // blocks)
    return [
        statistics.median(ours[i : i + size]) / statistics.median(floor[i : i + size])
        for i in range(0, len(ours) - size + 1, size)
    ]
