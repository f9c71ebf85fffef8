"""One task as the stores keep it, and the rules every backend shares: statuses, expiry, the open count, the
suggested poll interval. A leaf: the stores, the engine and the wire all read tasks through it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CANCELLED", "COMPLETED", "FAILED", "INPUT_REQUIRED", "MIN_TTL_MS", "STATUSES", "TERMINAL", "WORKING", "TaskRecord",
    "expires_at", "iso", "poll_interval_ms",
]

WORKING = "working"
INPUT_REQUIRED = "input_required"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (WORKING, INPUT_REQUIRED, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

MIN_TTL_MS = 1000
"""The shortest TTL a task gets: a client asking less (even 1 ms) gets this, and the task says so in its `ttl`."""

POLL_SHARE = 0.05
"""A poll every 5% of the task's age: a client polling at the suggested interval learns of the end at most
about 5% of the call's duration late, and a minutes-long call is asked about a few times a minute."""
POLL_MS = (50, 5000)
"""The shortest and the longest interval suggested."""


def iso(t: float) -> str:
    """ISO 8601 with milliseconds and `Z`, as the spec's examples write timestamps."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def poll_interval_ms(created: float, now: float) -> int:
    """The interval to suggest now to a client polling a task created at `created`."""
    return int(min(max((now - created) * 1000 * POLL_SHARE, POLL_MS[0]), POLL_MS[1]))


def expires_at(*, ended: bool, updated: float, lease: float, ttl_ms: int) -> float:
    """When a task may be dropped: its TTL after it ended; while it works (or waits for input), its TTL after its
    lease, which its instance renews, so a working task never expires and keeps its place under the per-caller cap,
    and one whose instance died goes once its lease and then its TTL have run out. Never before `created + ttl`,
    as the spec asks: `updated` and `lease` are both at least `created`."""
    return (updated if ended else max(updated, lease)) + ttl_ms / 1000


@dataclass(frozen=True)
class TaskRecord:
    """A task: whose it is, which tool it runs, where it stands, and (once ended) its result or its error.

    `result` is the tool's `CallToolResult` in wire form (camelCase JSON), exactly as the direct call would
    have answered; `error` a JSON-RPC error object (`code`, `message`) for a task that could not produce one.
    `instance` is the process running it and `lease` the time until which that process vouches for it.
    A task whose tool asked the client for input (2026 multi round-trip) is `input_required`: `input_requests`
    holds the requests still unanswered, `input_responses` the answers so far, `request_state` the tool's own.
    """

    task_id: str
    owner: str
    tool: str
    created: float
    ttl_ms: int
    status: str = WORKING
    updated: float = 0.0
    message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    instance: str = ""
    lease: float = 0.0
    cancel_requested: bool = False
    input_requests: dict[str, Any] | None = None
    input_responses: dict[str, Any] | None = None
    request_state: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def expires(self) -> float:
        """See `expires_at`."""
        return expires_at(ended=self.terminal, updated=self.updated, lease=self.lease, ttl_ms=self.ttl_ms)

    def ended(self, status: str, now: float, *, message: str | None = None, result: dict[str, Any] | None = None,
              error: dict[str, Any] | None = None) -> TaskRecord:  # fmt: skip
        return replace(self, status=status, updated=now, message=message, result=result, error=error)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TaskRecord:
        return cls(**json.loads(text))
