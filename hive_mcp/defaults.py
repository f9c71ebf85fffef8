"""Defaults that more than one module needs: the settings declare them as their defaults, and the
parts built without settings (a provider, `Limits`, `build_server`, a conversation store in a
test or a script) fall back to the same values. A leaf: it imports nothing."""

from __future__ import annotations

MIB = 1024 * 1024

MAX_USD = 1_000_000_000
"""The largest budget, in USD (a setting's or the config's): its micro-USD, even summed, stay within the 64-bit
integers the ledger's SQLite and Redis keep them in, where 1e300 would overflow at the first settled call."""

DEFAULT_DEADLINE_S = 600.0
"""Seconds a call may take, retries included."""
DEFAULT_HEARTBEAT_S = 10.0
"""The longest a waiting call goes without a progress notification, when its request carries a progress token."""
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_QUEUE_TIMEOUT_S = 30.0
DEFAULT_MAX_INPUT_BYTES = MIB
DEFAULT_MAX_FILE_BYTES = MIB
"""The largest file a call may attach (`files`)."""
DEFAULT_MAX_FILES_BYTES = 20 * MIB
"""The most bytes of files one call may attach, all together."""

CONVERSATION_TTL_S = 3 * 3600
CONVERSATION_MAX = 1000
CONVERSATION_MAX_TURNS = 200
CONVERSATION_MAX_BYTES = 2 * MIB

RESULT_INLINE_TOKENS = 20_000
"""Tokens of a reply's text a result carries inline (litellm's count for its model); the rest is a resource."""
RESULT_TTL_S = 3600
"""Seconds a big answer stays readable as `hive://results/{id}`."""
TASK_TTL_S = 3600
"""How long a task and its result are kept after it is created, when the client asks for no TTL."""
TASK_MAX_TTL_S = 24 * 3600
"""The longest TTL a client may ask a task to be kept for."""
TASKS_PER_CALLER = 32
"""Unfinished tasks one caller may have at once."""
TASK_LEASE_S = 15.0
"""How long a running task's instance may go without renewing its lease before the task reads `failed`."""

DEFAULT_MODEL = "gpt-4o-mini"
"""The default model (`--model`, HIVE_MCP_MODEL): what a call that names none asks for."""

DUMP_MAX_COUNT = 500
"""Dumps kept at most (the oldest go first)."""
DUMP_MAX_MB = 100.0
"""MB of dumps kept at most."""
DUMP_MAX_AGE_DAYS = 30.0
"""Days a dump is kept."""

SPEND_KEEP_DAYS = 90
"""Days the ledger keeps its daily totals: a month's budget reads a whole month back, so at least 31."""
SPEND_CALLS_DAYS = 7
"""Days the ledger keeps each finished call's row."""

SQLITE_BUSY_TIMEOUT_S = 5.0
"""How long a write to an embedded store's SQLite file waits for another connection's write lock (processes
sharing the file queue rather than fail). The spend ledger waits longer (`spend.sqlite_backend`)."""

REDIS_PREFIX = "hive-mcp:"
"""What every key hive-mcp keeps in Redis starts with (conversations, results, tasks, dumps, the ledger's
`spend:` keys, the change channel): they stay apart from anyone else's keys in a shared Redis."""

DEFAULT_PAGE_LIMIT = 20
"""How many entries a listing shows when none is asked for: the MCP listings, the dump store's pages, the
dashboard and the CLI's `list` commands."""

MAX_PAGE_LIMIT = 200
"""The most dumps one page of their listing holds: what `list_failed_requests` and the dashboard may ask as
their `limit`, and a resource list's page size."""
