"""Dumps at scale: listing a directory of 10,000 failure dumps.

The big directory is made fast by copying one real dump's file under many ids;
writes go through the real store at its default retention (500 dumps, so every
write also prunes). Targets: `DumpStore.list` of the newest 50 at most 50 ms,
the first page of `resources/list` through the SDK client (a server built over
the same store, in-process) at most 100 ms.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from mcp import Client

from bench.common import MODE, USER, Bench, Row, Section, inprocess_server, interleaved, per_call_ms
from bench.upstream_proc import TEXT_MODEL

DUMPS = 10_000
RETAINED_WRITES = 600
PAGE = 50
LIST_MS = 50.0
RESOURCES_MS = 100.0
LIST = f"DumpStore.list newest {PAGE} of {DUMPS:,}"
FILTERED = f"DumpStore.list newest {PAGE}, filtered, of {DUMPS:,}"
RESOURCES = f"resources/list first page, in-process, of {DUMPS:,}"


async def run(bench: Bench) -> Section:
    from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump, make_dump_id

    now = datetime.now(timezone.utc)
    dump = FailureDump(
        timestamp=now, model=TEXT_MODEL, error_type="rate_limit", outcome="gave_up", messages=USER,
        attempts=[AttemptRecord(time=now, error_type="rate_limit", status=429, message="slow down")],
    )  # fmt: skip

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
            assert len(page.resources) == PAGE + 1 and page.next_cursor  # the index, then the dumps

        samples = await interleaved(
            {LIST: per_call_ms(newest), FILTERED: per_call_ms(filtered), RESOURCES: per_call_ms(first_page)},
            bench.reps(100, 20),
            warmup=3,
        )
    rows = {name: Row(name, "ms", s) for name, s in samples.items()}
    rows[LIST].at_most(LIST_MS, f"{LIST_MS} ms")
    rows[RESOURCES].at_most(RESOURCES_MS, f"{RESOURCES_MS} ms")
    return Section("dumps", [Row("DumpStore.write at default retention (500)", "ms", writes), *rows.values()])
