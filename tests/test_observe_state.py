"""The state backend's metrics against a real valkey-server: each round trip timed, each outage counted once
however many calls fail in it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from hive_mcp.spend.redis_backend import RedisBackend
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def redis_round_trips() -> float:
    """Round trips to Redis timed so far, whatever the command."""
    return sum(
        s.value for m in REGISTRY.collect() if m.name == "hive_mcp_state_latency_seconds"
        for s in m.samples if s.name.endswith("_count") and s.labels.get("store") == "redis"
    )  # fmt: skip


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


def test_each_round_trip_is_timed_and_an_outage_counted_once() -> None:
    with ValkeyProcess(valkey_binary()) as valkey:
        ledger = RedisBackend(valkey.url)
        outages, trips = value("hive_mcp_state_outages_total", store="redis"), redis_round_trips()
        assert ledger.calls(since()) == []
        assert redis_round_trips() > trips
        valkey.stop()
        for _ in range(5):
            with pytest.raises(OSError):
                ledger.calls(since())
        assert value("hive_mcp_state_outages_total", store="redis") == outages + 1
