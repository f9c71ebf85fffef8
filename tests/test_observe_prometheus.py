"""The metrics as a real Prometheus server sees them: `python -m hive_mcp` as a subprocess (HTTP with `--workers 2`,
and stdio with `--metrics-port`), scraped every second, asserted through Prometheus' query API. Skipped where
Debian's `prometheus` is not installed (`.ci/tools.sh` installs it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from harness.processes import free_port
from harness.prometheus import Prometheus, prometheus_binary
from harness.upstream import Reply, Upstream
from tests.clients import text_of
from tests.conftest import MODEL
from tests.servers import HttpServer, Session, server_env
from tests.steering import Seen, Steer, steered_target, worker_pids
from tests.worker_servers import two_worker_server, wait_loaded, workers_env

pytestmark = pytest.mark.skipif(
    prometheus_binary() is None, reason="prometheus is not installed (Debian: apt-get install prometheus; .ci/tools.sh)"
)

METRICS_TOKEN = "scrape-0123456789abcdef"
ATTEMPTS_OK = f'sum(hive_mcp_upstream_attempts_total{{outcome="ok",group="{MODEL}"}})'


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(Reply.text("a whole reply")) as up:
        yield up


@pytest.fixture
def two_workers(upstream: Upstream, tmp_path: Path) -> Iterator[HttpServer]:
    env = {**workers_env(upstream, tmp_path / "dumps"), "HIVE_MCP_METRICS_TOKEN": METRICS_TOKEN}
    server = two_worker_server(env, tmp_path, "workers")
    try:
        server.wait_ready()
        wait_loaded(server)
        yield server
    finally:
        assert server.terminate() == 0, server.stderr()


def test_one_scrape_counts_the_calls_of_every_worker(two_workers: HttpServer, tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{two_workers.port}", token=METRICS_TOKEN)
    try:
        prometheus.wait_for('up{job="hive"}', 1)  # the scrapes bring the token and are answered
        a, b = worker_pids(two_workers.stderr())
        seen, steer = Seen(), Steer(Seen())
        steer.seen = seen
        session = Session(steered_target(two_workers.url, steer), "auto")
        try:

            async def calls(client: Client) -> None:
                for want in (a, b, b):
                    steer.want = want
                    result = await client.call_tool("complete", {"prompt": "hi"})
                    assert not result.is_error and text_of(result) == "a whole reply"

            session.run(calls, timeout=120)
        finally:
            session.close()
        assert seen.pids("tools/call") == {a, b}, seen.answers
        assert prometheus.wait_for(ATTEMPTS_OK, 3) == 3
        assert prometheus.value('up{job="hive"}') == 1
    finally:
        prometheus.stop()
    assert METRICS_TOKEN not in two_workers.stderr()


def test_stdio_serves_metrics_on_its_own_port(upstream: Upstream, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    params = StdioServerParameters(command=sys.executable, args=["-m", "hive_mcp", "--metrics-port", str(port)],
                                   env=env, cwd=str(tmp_path))  # fmt: skip
    with open(tmp_path / "stdio.stderr.log", "w") as errlog:
        session = Session(lambda: stdio_client(params, errlog=errlog), "legacy")
        try:
            prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}")
            try:
                prometheus.wait_for('up{job="hive"}', 1)

                async def call(client: Client) -> None:
                    result = await client.call_tool("complete", {"prompt": "hi"})
                    assert not result.is_error, result

                session.run(call, timeout=120)
                assert prometheus.wait_for(ATTEMPTS_OK, 1) == 1
            finally:
                prometheus.stop()
        finally:
            session.close()
