"""Answers too big for one reply, kept whole for their caller: the store (`sqlite_store` beside the
conversations' database, `redis_store` on Redis/Valkey; `hive_mcp.backends` opens the state URL's kind) and the
splitting into parts.

The storage layer only; the MCP layer pages a result and serves `hive://results/{id}` on top of it
(`hive_mcp.mcp.paging`). A result belongs to its caller (another caller's id reads as an unknown one), lives
`ttl_s` by the store's clock, and is listed newest first for its owner.
"""

from __future__ import annotations

from .split import split_parts
from .store import ResultStore, ResultStoreError, ResultSummary, StoredResult, UnknownResult, is_result_id

__all__ = [
    "ResultStore",
    "ResultStoreError",
    "ResultSummary",
    "StoredResult",
    "UnknownResult",
    "is_result_id",
    "split_parts",
]

