"""Shared fixtures: offline litellm, a scripted upstream, a provider pointed at it, the two MCP protocol
eras (`mode`), a store clock the test moves (`clock`); the valkey, backend and ledger fixtures come from the
plugin `tests.conftest_valkey`, the in-process server factory (`make_server`) from `tests.conftest_mcp`, the
dump store tests' `store_dir` from `tests.conftest_dumps`, the subprocess tests' `workdir` and upstreams
(`e2e_upstream`, `sec_upstream`) from `tests.conftest_subprocess`."""

from __future__ import annotations

import os

# Offline before anything imports litellm; no real keys leak in from the machine.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HIVE_MCP_API_KEY", "HIVE_MCP_MODEL", "HIVE_MCP_API_BASE"):
    os.environ.pop(_var, None)

from collections.abc import Iterator  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump  # noqa: E402
from hive_mcp.provider.retry import RetryPolicy  # noqa: E402
from harness.upstream import Upstream  # noqa: E402

TEST_KEY = "sk-test-0123456789abcdefSECRET"
MODEL = "openai/gpt-4o-mini"
"""The default model of every test server and provider (in litellm's price map, so calls are priced)."""

pytest_plugins = ("tests.conftest_valkey", "tests.conftest_mcp", "tests.conftest_dumps", "tests.conftest_subprocess")

# Real retry rules at 1/1000 speed: a 2 s backoff sleeps 2 ms.
FAST_RETRY = RetryPolicy(time_scale=0.001)

DEADLINE_S = 2.0
"""A deadline the request must reach the upstream within, for the upstream to be the slow part: litellm's first
call in a process imports the rest of litellm before it sends (longer than a fraction of a second on a loaded
machine), so a test warms its provider first (`warm_up`, as `serve` does at start-up), and a warmed call sends
in far less than this."""


def sample_dump(
    timestamp: datetime, *, error_type: str = "rate_limit", model: str = MODEL, content: str = "hello"
) -> FailureDump:
    """A one-attempt dump that gave up, for tests that need dumps on disk."""
    return FailureDump(
        timestamp=timestamp,
        model=model,
        error_type=error_type,
        outcome="gave_up",
        attempts=[AttemptRecord(time=timestamp, error_type=error_type, status=429, message="slow down")],
        messages=[{"role": "user", "content": content}],
    )


@pytest.fixture(autouse=True)
def _no_dumps_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider built without a store writes to the default dump directory, a server to the default
    conversation store: keep both in tmp_path."""
    monkeypatch.setenv("HIVE_MCP_DUMP_DIR", str(tmp_path / "default-dumps"))
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "hive-home"))  # the default conversation store


class Clock:
    """A store's clock (seconds since the epoch), moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    """The MCP client's protocol era: 2025-11-25 (initialize handshake) and 2026-07-28 (per-request envelope)."""
    return request.param


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture
def ups() -> Iterator[list[Upstream]]:
    """Three scripted upstreams: one per deployment of a models config."""
    servers = [Upstream().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    return tmp_path / "dumps"


@pytest.fixture
def store(dump_dir: Path) -> DumpStore:
    return DumpStore(dump_dir)


@pytest.fixture
def provider(upstream: Upstream, store: DumpStore):
    from hive_mcp.provider import LiteLLMProvider

    return LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )


@pytest.fixture
def warm(provider):
    """`provider`, warmed as `serve` warms it: its first call sends within `DEADLINE_S`."""
    provider.warm_up()
    return provider
