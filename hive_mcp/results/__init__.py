"""Answers too big for one reply, kept whole for their caller: the store (SQLite beside the conversations'
database by default, Redis/Valkey when HIVE_MCP_STATE_URL names one) and the splitting into parts.

The storage layer only; the MCP layer pages a result and serves `hive://results/{id}` on top of it
(`hive_mcp.mcp.paging`). `open_results` picks the backend from the state URL, as `conversations.open_store`
does. A result belongs to its caller (another caller's id reads as an unknown one), lives `ttl_s` by the
store's clock, and is listed newest first for its owner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .split import split_parts
from .store import ResultStore, ResultStoreError, ResultSummary, StoredResult, UnknownResult, is_result_id

__all__ = [
    "ResultStore",
    "ResultStoreError",
    "ResultSummary",
    "StoredResult",
    "UnknownResult",
    "is_result_id",
    "open_results",
    "split_parts",
]


def open_results(
    state_url: str | None = None, *, env: Mapping[str, str] = os.environ, **kwargs: Any
) -> ResultStore:
    """The store for `state_url`: Redis for redis/rediss/unix URLs, else SQLite (`path`, default beside the
    conversations' database). `kwargs` go to the backend (`ttl_s`, `clock`; `path`; `prefix`). Nothing is
    opened yet: a store that cannot be reached fails the calls that use it."""
    if not state_url:
        from .sqlite_store import SQLiteResults

        return SQLiteResults(kwargs.pop("path", None), env=env, **kwargs)
    from .redis_store import RedisResults

    return RedisResults(state_url, **kwargs)
