"""Failed-request dumps: the format (ids, cursors, the model) and the store that keeps them.

`format` is what a dump is and what a writer offers (`DumpWriter`); `store` is
the directory (`DumpStore`). The names below are the package's public API;
`REDACTED`, `redact` and `strip_credentials` live in `hive_mcp.redact`.
"""

from __future__ import annotations

from ..redact import REDACTED, redact, strip_credentials
from .format import (
    ERROR_TYPES,
    AttemptRecord,
    DumpCorrupt,
    DumpLookupError,
    DumpNotFound,
    DumpPage,
    DumpSummary,
    DumpWriter,
    FailureDump,
    InvalidCursor,
    InvalidDumpId,
    Outcome,
    default_dump_dir,
    is_valid_dump_id,
    make_dump_id,
)
from .owned import CallerDumps
from .store import MAX_PAGE_LIMIT, DumpStore

__all__ = [
    "ERROR_TYPES",
    "MAX_PAGE_LIMIT",
    "REDACTED",
    "AttemptRecord",
    "CallerDumps",
    "DumpCorrupt",
    "DumpLookupError",
    "DumpNotFound",
    "DumpPage",
    "DumpStore",
    "DumpSummary",
    "DumpWriter",
    "FailureDump",
    "InvalidCursor",
    "InvalidDumpId",
    "Outcome",
    "default_dump_dir",
    "is_valid_dump_id",
    "make_dump_id",
    "redact",
    "strip_credentials",
]
