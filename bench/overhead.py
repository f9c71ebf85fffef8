"""Call overhead: one short non-streaming reply, from a bare HTTP POST up to `complete` over each transport.

Every variant hits the same upstream, interleaved, so the rows differ only by the
layers in between. Targets (the issue): `complete` over stdio at most 1.0 ms
(median) above litellm.acompletion in-process, over streamable HTTP at most 2.0 ms.
"""

from __future__ import annotations

import httpx
from mcp import Client

from bench.common import (
    API_KEY,
    MODE,
    USER,
    Bench,
    Row,
    Section,
    complete,
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
STDIO_BUDGET_MS = 1.0
HTTP_BUDGET_MS = 2.0


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
    return Section("overhead", list(rows.values()))
