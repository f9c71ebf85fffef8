"""A real Prometheus server (Debian's `prometheus` package) on a loopback port, scraping one target every second,
asked through its HTTP query API (`/api/v1/query`). No pytest here: `bench/` may use it too."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .processes import free_port

READY_S = 30.0
"""How long Prometheus may take to start, and a query to come true (a scrape a second, on a busy machine)."""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or next((p for p in ("/usr/bin/prometheus",) if Path(p).exists()), None)


class Prometheus:
    """`prometheus` scraping `target` (host:port) at `path` every second, with `token` as its bearer token."""

    def __init__(self, workdir: Path, target: str, *, path: str = "/metrics", token: str | None = None) -> None:
        binary = prometheus_binary()
        assert binary is not None, "prometheus is not installed"
        workdir.mkdir(parents=True, exist_ok=True)
        auth = f"\n    authorization:\n      credentials: {token}" if token else ""
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: hive\n    scrape_interval: 1s\n    metrics_path: {path}{auth}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(workdir / "prometheus.log", "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=10.0)
        self._until(lambda: self._ready(), "ready")

    def log(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}:\n{self.log()}"
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_S
        while not condition():
            assert time.monotonic() < deadline, f"prometheus: not {what} after {READY_S} s:\n{self.log()}"
            time.sleep(0.2)  # Prometheus scrapes on its own clock: there is no event to wait on

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now."""
        reply = self.http.get("/api/v1/query", params={"query": promql}).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value `promql` evaluates to now (None: no series)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, expected: float) -> float:
        """Until `promql` is `expected` (scrapes come each second), bounded."""
        self._until(lambda: self.value(promql) == expected, f"{promql} == {expected} (now {self.value(promql)})")
        return expected

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
