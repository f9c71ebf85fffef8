"""Fixtures and helpers for the failure-dump store's own tests: a plugin of `tests/conftest.py`, so its fixture
(`store_dir`) reaches every test; its helpers are imported.

`store_without_age_limit` is not a fixture here: conftest's own `store` (with the default retention) outranks
any plugin's, and only a module's own fixture overrides it, so a module takes it as its `store` with
`store = pytest.fixture(store_without_age_limit)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump

__all__ = ["T0", "make_dump", "store_dir", "store_without_age_limit"]

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_dump(
    *,
    timestamp: datetime | None = None,
    model: str = "openai/gpt-4o-mini",
    error_type: str = "rate_limit",
    outcome: str = "gave_up",
    messages: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> FailureDump:
    ts = timestamp or datetime.now(UTC)
    return FailureDump(
        timestamp=ts,
        model=model,
        error_type=error_type,
        outcome=outcome,  # type: ignore[arg-type]
        attempts=[
            AttemptRecord(time=ts, error_type=error_type, status=429, message="slow down", delay_s=1.5),
            AttemptRecord(time=ts, error_type=error_type, status=429, message="still slow", delay_s=0.0),
        ],
        messages=messages if messages is not None else [{"role": "user", "content": "hello"}],
        **kw,
    )


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "dumps"


def store_without_age_limit(store_dir: Path) -> DumpStore:
    """No age limit, so fixed test timestamps are not pruned."""
    return DumpStore(store_dir, max_age=None)
