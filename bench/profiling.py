"""Profiling the server: a launcher that profiles a chosen window, and the split of its CPU by owner.

`python -m bench.profiling OUT -- ARGS...` runs `hive-mcp ARGS...` as usual, with
cProfile off. SIGUSR1 turns it on, SIGUSR2 turns it off and writes the stats to
OUT (through a temporary file, so OUT is whole once it exists). The window is
exactly the load being studied: start-up imports and shutdown stay out of it.

cProfile sees the main thread only; the server's event loop (every request,
every stream) runs there. Threads (the litellm import, dump listing) are not in it.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import signal
import sys
from collections import defaultdict
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SDK = "mcp SDK (+starlette, uvicorn, pydantic, sse)"
LITELLM = "litellm (+openai, httpx, aiohttp)"
GROUPS: dict[str, frozenset[str]] = {
    "hive_mcp": frozenset({"hive_mcp"}),
    LITELLM: frozenset(
        {"litellm", "openai", "httpx", "httpcore", "aiohttp", "aiohappyeyeballs", "yarl", "multidict",
         "frozenlist", "propcache", "tiktoken", "tokenizers", "jiter", "distro", "certifi"}
    ),
    SDK: frozenset(
        {"mcp", "mcp_types", "starlette", "uvicorn", "sse_starlette", "pydantic", "pydantic_core", "h11",
         "httptools", "jsonschema", "jsonschema_specifications", "referencing", "rpds", "typing_inspection"}
    ),
}  # fmt: skip
"""Top-level packages by owner. Everything else (the stdlib's asyncio, json, ...; anyio) is "other"."""
OTHER = "other"
PYDANTIC = frozenset({"pydantic", "pydantic_core", "typing_inspection"})
"""The SDK's by file, but litellm builds every chunk as pydantic models (openai's) too:
in the caller split its time goes to whoever called it."""

TOPS = {
    "hive_mcp": GROUPS["hive_mcp"],
    "sdk": GROUPS[SDK] - PYDANTIC,
    "pydantic": PYDANTIC,
    "litellm": GROUPS[LITELLM],
}
"""Whose busiest functions the report lists."""

Func = tuple[str, int, str]  # pstats' key: file, line, function name


# ---------------------------------------------------------------------------
# The launcher
# ---------------------------------------------------------------------------


def main() -> int:
    out, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: python -m bench.profiling OUT -- HIVE_MCP_ARGS..."
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        tmp = f"{out}.tmp"
        profiler.dump_stats(tmp)
        os.replace(tmp, out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["hive-mcp", *args]
    from hive_mcp.cli import main as hive_mcp

    return hive_mcp()


# ---------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------


def package_of(func: Func) -> str:
    """The top-level package a function belongs to ("stdlib" and "builtins" for the rest)."""
    filename, _, name = func
    if filename == "~":  # C code: <method 'x' of 'pydantic_core.Foo' objects>, <built-in method _json.y>
        m = re.search(r"(?:of '|built-in method )([A-Za-z_]\w*)\.", name)
        return m[1] if m else "builtins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        return top.removesuffix(".py").split(".")[0]
    if Path(filename).is_relative_to(ROOT / "hive_mcp"):
        return "hive_mcp"
    return "stdlib"


def group_of(func: Func) -> str:
    pkg = package_of(func)
    return next((group for group, pkgs in GROUPS.items() if pkg in pkgs), OTHER)


class Split:
    """The profile's tottime split by owner, two ways.

    `by_file`: each function's own time goes to the owner of its file (the split
    the issue asks for). `by_caller`: the own time of shared code ("other": the
    event loop, json, sockets; and pydantic) goes to whoever called it, in
    proportion to the time each caller spent in it, followed up the callers
    until an owner is found; time nobody owns (the loop's own turn) stays "other".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw: dict[Func, tuple[Any, ...]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        self.total = sum(v[2] for v in self.raw.values())

    @cached_property
    def by_file(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for func, (_, _, tottime, _, _) in self.raw.items():
            out[group_of(func)] += tottime
        return self._ordered(out)

    @cached_property
    def by_caller(self) -> dict[str, float]:
        shares = self._caller_shares()
        out: dict[str, float] = defaultdict(float)
        for func, (_, _, tottime, _, _) in self.raw.items():
            for group, share in shares[func].items():
                out[group] += tottime * share
        return self._ordered(out)

    def _caller_shares(self, rounds: int = 200) -> dict[Func, dict[str, float]]:
        """Each function's owners as shares summing to 1: a fixed point, found by repeated averaging.

        An owned function is its owner's alone; shared code takes its callers'
        shares, weighted by the cumulative time each caller spent in it.
        """
        shares: dict[Func, dict[str, float]] = {f: {group_of(f): 1.0} for f in self.raw}
        shared = {}
        for func in self.raw:
            if group_of(func) == OTHER or package_of(func) in PYDANTIC:
                callers = {c: v[3] or v[1] for c, v in self.raw[func][4].items() if c in self.raw and c != func}
                if total := sum(callers.values()):
                    shared[func] = {c: w / total for c, w in callers.items()}
        for _ in range(rounds):
            change = 0.0
            for func, callers in shared.items():
                new: dict[str, float] = defaultdict(float)
                for caller, weight in callers.items():
                    for group, share in shares[caller].items():
                        new[group] += weight * share
                change = max(change, *(abs(new[g] - shares[func].get(g, 0.0)) for g in new))
                shares[func] = new
            if change < 1e-9:
                break
        return shares

    def top(self, packages: frozenset[str], n: int = 10) -> list[dict[str, Any]]:
        """The functions of these packages with the most own time."""
        funcs = sorted(((v[2], f) for f, v in self.raw.items() if package_of(f) in packages), reverse=True)
        return [
            {"function": pstats.func_std_string(f), "tottime_s": round(t, 4), "calls": self.raw[f][1]}
            for t, f in funcs[:n]
        ]

    def _ordered(self, seconds: dict[str, float]) -> dict[str, float]:
        return {g: round(seconds.get(g, 0.0), 4) for g in [*GROUPS, OTHER]}

    def as_json(self) -> dict[str, Any]:
        return {
            "total_tottime_s": round(self.total, 4),
            "by_file_s": self.by_file,
            "by_caller_s": self.by_caller,
            **{f"top_{name}": self.top(packages) for name, packages in TOPS.items()},
        }

    def report(self, title: str, n: int = 30) -> str:
        """A text report: both splits, the top functions of our layer and the SDK, then pstats' top `n`."""
        out = io.StringIO()
        out.write(f"{title}\n")
        splits = {"own time, by file owner": self.by_file, "shared time given to callers": self.by_caller}
        for label, split in splits.items():
            out.write(f"\n{label}:\n")
            out.writelines(f"  {g:46} {s:9.3f} s {100 * s / self.total:5.1f} %\n" for g, s in split.items())
        for name, packages in TOPS.items():
            out.write(f"\ntop {name} by own time:\n")
            out.writelines(f"  {t['tottime_s']:8.3f} s {t['calls']:9}  {t['function']}\n" for t in self.top(packages))
        for key in ("tottime", "cumulative"):
            out.write(f"\n--- top {n} by {key} ---\n")
            pstats.Stats(str(self.path), stream=out).sort_stats(key).print_stats(n)
        return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
