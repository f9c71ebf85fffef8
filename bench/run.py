"""Benchmarks: `python -m bench.run [--quick] [--only SECTION[,SECTION]] [--out FILE]`.

Everything runs against the scripted upstream on 127.0.0.1, in a process of its
own, so the numbers are hive-mcp's own costs, not a provider's. Each section
prints its table as it finishes; the JSON (rows, details, machine) is rewritten
after every section. Not part of the test suite: timings on a noisy machine
make flaky tests.

Sections: overhead, streaming, concurrency, startup, memory, dumps, conversations, routing, workers, spend, outage,
tracing, tasks, files, fanout (see each module).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import (
    concurrency, conversations, dumps, fanout, files, memory, outage, overhead, routing, spend, startup, streaming,
    tasks, tracing, workers,
)  # fmt: skip
from bench.common import ROOT, Bench, Row, Section, UpstreamProcess

SECTIONS: dict[str, Callable[[Bench], Awaitable[Section]]] = {
    "overhead": overhead.run,
    "streaming": streaming.run,
    "concurrency": concurrency.run,
    "startup": startup.run,
    "memory": memory.run,
    "dumps": dumps.run,
    "conversations": conversations.run,
    "routing": routing.run,
    "workers": workers.run,
    "spend": spend.run,
    "outage": outage.run,
    "tracing": tracing.run,
    "tasks": tasks.run,
    "files": files.run,
    "fanout": fanout.run,
}
RESULTS = ROOT / "bench" / "results"


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{3 if abs(value) < 10 else 2 if abs(value) < 100 else 1}f}"


def table(sections: list[Section]) -> str:
    head = f"{'benchmark':52} {'unit':>8} {'n':>6} {'median':>11} {'p90':>11} {'min':>11} {'target':>11}  met"
    lines = [head, "-" * len(head)]
    for section in sections:
        lines.append(f"[{section.name}]")
        lines.extend(_line(row) for row in section.rows)
    return "\n".join(lines)


def _line(row: Row) -> str:
    target = f"{row.target_spec[:2]}{fmt(row.target)}" if row.target is not None else ""
    met = "" if row.met is None else ("yes" if row.met else "NO")
    return (
        f"{row.name[:52]:52} {row.unit:>8} {len(row.samples):6} {fmt(row.median):>11} {fmt(row.p90):>11} "
        f"{fmt(row.min):>11} {target:>11}  {met}"
    )


def meta(quick: bool) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("hive-mcp", "mcp", "litellm")},
        "git": {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "hive_mcp"))},
        "statistics": "median and nearest-rank p90 of the samples; targets are checked against the median",
    }


def write(out: Path, info: dict[str, Any], sections: list[Section]) -> None:
    data = {
        "meta": info,
        "sections": {
            s.name: {"rows": [r.as_json() for r in s.rows], "details": s.details, "problems": s.problems}
            for s in sections
        },
    }
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")


def shout(section: Section) -> None:
    """Problems are possible bugs in hive-mcp: they must not scroll by unseen."""
    for problem in section.problems:
        print(f"\n!!! {section.name}: {problem}\n", file=sys.stderr, flush=True)


async def run(names: list[str], quick: bool, out: Path) -> list[Section]:
    info = meta(quick)
    done: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="hive-bench-") as tmp:
        workdir = Path(tmp)
        with open(workdir / "upstream.log", "wb") as log, UpstreamProcess(log) as upstream:
            out.parent.mkdir(parents=True, exist_ok=True)
            bench = Bench(quick=quick, upstream=upstream, workdir=workdir, results_dir=out.parent)
            for name in names:
                print(f"\n== {name} ==", flush=True)
                section = await SECTIONS[name](bench)
                done.append(section)
                print(table([section]), flush=True)
                shout(section)
                write(out, info, done)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    # Warnings only, set before the SDK's MCPServer sets up INFO logging of its own (it
    # then leaves an existing setup alone): a line a request would be timed as the client's cost.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sections = asyncio.run(run(names, args.quick, args.out))
    print("\n" + table(sections))
    missed = [f"{s.name}: {r.name}" for s in sections for r in s.rows if r.met is False]
    print("\ntargets missed: " + ("; ".join(missed) if missed else "none"))
    for section in sections:
        shout(section)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
