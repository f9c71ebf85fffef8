"""Dumps at scale: listing a directory of 10,000 failure dumps.

The big directory is made fast by copying one real dump's file under many ids;
writes go through the real store at its default retention (500 dumps, so every
write also prunes). Targets: `DumpStore.list` of the newest 50 at most 50 ms,
the first page of `resources/list` through the SDK client (a server built over
the same store, in-process) at most 100 ms. A write of a dump carrying 1.1 MB of
messages (an agent's large context: code, prose, tool output) is timed in CPU
(`time.process_time`), since that is what stalls every stream in the process
while it runs: at most 50 ms of CPU per MB of messages.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from mcp import Client

from bench.common import MODE, USER, Bench, Row, Section, inprocess_server, interleaved, per_call_ms
from bench.upstream_proc import TEXT_MODEL
from hive_mcp.mcp.constants import DUMP_URI_PREFIX

DUMPS = 10_000
RETAINED_WRITES = 600
PAGE = 50
LIST_MS = 50.0
RESOURCES_MS = 100.0
LIST = f"DumpStore.list newest {PAGE} of {DUMPS:,}"
FILTERED = f"DumpStore.list newest {PAGE}, filtered, of {DUMPS:,}"
RESOURCES = f"resources/list first page, in-process, of {DUMPS:,}"
LARGE_MB = 1.1
LARGE_CPU_MS_PER_MB = 50.0
LARGE = "dump write CPU per MB of messages"


def large_context(target_bytes: int) -> list[dict[str, object]]:
    """A long agent conversation: prose, code with quotes and newlines, tool calls and their output."""
    code = (
        'def handler(request):\n    """Answer one request."""\n    if request.get("id") is None:\n'
        '        raise ValueError(f"missing id in {request!r}")\n    return {"ok": True, "path": "/v1/items"}\n'
    )
    prose = (
        "The failing test reads the configuration twice; the second read sees the environment after the "
        "fixture has changed it, so the comparison is between two different settings objects. "
    )
    messages: list[dict[str, object]] = [{"role": "system", "content": prose * 40}]
    i = 0
    while len(json.dumps(messages, ensure_ascii=False)) < target_bytes:
        call_id = f"call_{i:06d}"
        messages.append({"role": "user", "content": f"step {i}: " + prose * 3})
        messages.append({
            "role": "assistant", "content": None,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": "read_file", "arguments": json.dumps({"path": f"src/m{i}.py"})}}],
        })  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": code * 20})
        i += 1
    return messages


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump, make_dump_id

    now = datetime.now(timezone.utc)
    dump = FailureDump(
        timestamp=now, model=TEXT_MODEL, error_type="rate_limit", outcome="gave_up", messages=USER,
        attempts=[AttemptRecord(time=now, error_type="rate_limit", status=429, message="slow down")],
    )  # fmt: skip

    messages = large_context(int(LARGE_MB * 1_000_000))
    mb = len(json.dumps(messages, ensure_ascii=False).encode()) / 1_000_000
    large = dump.model_copy(update={"messages": messages, "message_count": len(messages)})
    large_store = DumpStore(bench.dir("dumps-large"), secrets=["a-configured-secret-value-0123456789"])
    cpu_per_mb = []
    for _ in range(bench.reps(30, 5)):
        fresh = large.model_copy()  # a new dump each time, as in service: write() fills in its id
        start = time.process_time()
        assert large_store.write(fresh) is not None
        cpu_per_mb.append((time.process_time() - start) * 1000 / mb)

    retained = DumpStore(bench.dir("dumps-retained"))
    writes = []
    for _ in range(RETAINED_WRITES):
        start = time.perf_counter()
        retained.write(dump)
        writes.append((time.perf_counter() - start) * 1000)

    directory = bench.dir("dumps-10k")
    store = DumpStore(directory, max_count=None, max_bytes=None, max_age=None)
    first = store.write(dump)
    assert first is not None
    payload = (directory / f"{first}.json").read_bytes()
    for i in range(DUMPS - 1):
        when = datetime.fromtimestamp(1.7e9 + i, timezone.utc)
        (directory / f"{make_dump_id(when, 'rate_limit', dump.model)}.json").write_bytes(payload)

    async def newest() -> None:
        assert len(store.list(limit=PAGE).items) == PAGE

    async def filtered() -> None:
        store.list(limit=PAGE, model=TEXT_MODEL, error_type="rate_limit")

    async with Client(inprocess_server(bench, store), mode=MODE, cache=None) as client:

        async def first_page() -> None:
            page = await client.list_resources()
            dumps = [r for r in page.resources if str(r.uri).startswith(DUMP_URI_PREFIX)]
            assert len(dumps) == PAGE and page.next_cursor  # a page of dumps after the fixed resources, and more

        samples = await interleaved(
            {LIST: per_call_ms(newest), FILTERED: per_call_ms(filtered), RESOURCES: per_call_ms(first_page)},
            bench.reps(100, 20),
            warmup=3,
        )
    rows = {name: Row(name, "ms", s) for name, s in samples.items()}
    rows[LIST].at_most(LIST_MS, f"{LIST_MS} ms")
    rows[RESOURCES].at_most(RESOURCES_MS, f"{RESOURCES_MS} ms")
    large_row = Row(LARGE, "ms/MB", cpu_per_mb).at_most(LARGE_CPU_MS_PER_MB, f"{LARGE_CPU_MS_PER_MB} ms")
    return Section(
        "dumps", [Row("DumpStore.write at default retention (500)", "ms", writes), large_row, *rows.values()]
    )
