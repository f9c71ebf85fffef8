"""The ledger on SQLite: its own file (`hive-mcp-spend.sqlite3` beside the conversations' database).

Its own file, so budget checks never wait behind a conversation write and the
two schemas migrate apart. WAL (readers never block the writer) and a busy
timeout (writers of several processes queue rather than fail). The check and
the reservation are one `BEGIN IMMEDIATE` transaction: SQLite takes the write
lock at BEGIN, so no other connection, in this process or another, can read
the totals between this check and this reservation.

What a budget has spent is read from `spend_scoped` (a day's cost by scope
string, those `Reservation.charged` gives), so a kind of scope declared in
`budgets.SCOPES` needs nothing here; `spend_totals` (by caller and model group)
is what the usage reports read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..conversations.records import default_db_path
from ..defaults import SPEND_CALLS_DAYS, SPEND_KEEP_DAYS
from ..sqlite import Database, transaction
from .budgets import CALLER, GROUP, Budget, period_key, reset_at, scope_of, scopes
from .ledger import Backend, CallRecord, Refused, Reservation, TotalRow

__all__ = ["SQLiteBackend", "default_spend_path"]

SPEND_FILENAME = "hive-mcp-spend.sqlite3"
LEDGER_BUSY_TIMEOUT_S = 10.0
"""How long a ledger write waits for another connection's write lock: twice the stores' wait
(`defaults.SQLITE_BUSY_TIMEOUT_S`), as every call of every process sharing the file writes the ledger (its
settlement; under a budget, its reservation first), and a reservation that gives up refuses the call (a budget
that cannot be checked is not spent)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS spend_totals (
        day TEXT NOT NULL, caller TEXT NOT NULL, grp TEXT NOT NULL, cost INTEGER NOT NULL DEFAULT 0,
        calls INTEGER NOT NULL DEFAULT 0, unpriced INTEGER NOT NULL DEFAULT 0,
        input INTEGER NOT NULL DEFAULT 0, output INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, caller, grp))""",
    """CREATE TABLE IF NOT EXISTS spend_calls (
        ts REAL NOT NULL, caller TEXT NOT NULL, grp TEXT NOT NULL, deployment TEXT NOT NULL,
        input INTEGER NOT NULL, output INTEGER NOT NULL, cached INTEGER NOT NULL, reasoning INTEGER NOT NULL,
        cost INTEGER NOT NULL, conversation_id TEXT, unpriced INTEGER NOT NULL,
        estimated INTEGER NOT NULL DEFAULT 0, called TEXT)""",
    "CREATE INDEX IF NOT EXISTS spend_calls_ts ON spend_calls (ts)",
    # One row per scope a reservation holds (`all`, `caller:NAME`, `model:GROUP`: ledger.Reservation.holds).
    """CREATE TABLE IF NOT EXISTS spend_holds (
        id TEXT NOT NULL, scope TEXT NOT NULL, day TEXT NOT NULL, amount INTEGER NOT NULL, expires REAL NOT NULL,
        PRIMARY KEY (id, scope))""",
    "CREATE INDEX IF NOT EXISTS spend_holds_scope ON spend_holds (scope, day)",
    # What each scope spent in a day: every scope `Reservation.charged` names for a settled call.
    """CREATE TABLE IF NOT EXISTS spend_scoped (
        scope TEXT NOT NULL, day TEXT NOT NULL, cost INTEGER NOT NULL, PRIMARY KEY (scope, day))""",
    "CREATE INDEX IF NOT EXISTS spend_scoped_day ON spend_scoped (day)",
    # The ids of settled calls, so a call replayed from the journal counts once.
    "CREATE TABLE IF NOT EXISTS spend_settled (id TEXT PRIMARY KEY, ts REAL NOT NULL)",
)


# Columns added since the first schema: a ledger file written before them gains them when opened.
_ADDED = {"spend_calls": (("estimated", "INTEGER NOT NULL DEFAULT 0"), ("called", "TEXT"))}


def _create(conn: sqlite3.Connection) -> None:
    scoped = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spend_scoped'").fetchone()
    for statement in _SCHEMA:
        conn.execute(statement)
    if not scoped:
        _fill_scoped(conn)
    for table, columns in _ADDED.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _fill_scoped(conn: sqlite3.Connection) -> None:
    """A ledger written before `spend_scoped`: its spent by scope from `spend_totals`, whose rows know a call's
    caller and the group that answered it, as those scopes were charged then (in the transaction that made the
    table, so it is filled once)."""
    spent: dict[tuple[str, str], int] = {}
    for day, caller, group, cost in conn.execute("SELECT day, caller, grp, cost FROM spend_totals"):
        for scope, _ in scopes({CALLER: caller, GROUP: group}):
            spent[scope, day] = spent.get((scope, day), 0) + cost
    conn.executemany("INSERT INTO spend_scoped VALUES (?, ?, ?)", [(*k, cost) for k, cost in spent.items()])


def default_spend_path(env: Mapping[str, str] = os.environ) -> Path:
    return default_db_path(env).with_name(SPEND_FILENAME)


def _period(b: Budget, when: datetime) -> tuple[str, tuple[str, ...]]:
    """The rows of the period `when` falls in; a month as a range of days, so the (day, ...) key is searched."""
    if b.period == "day":
        return "day = ?", (period_key("day", when),)
    return "day >= ? AND day < ?", (period_key("month", when) + "-01", period_key("day", reset_at("month", when)))


class SQLiteBackend(Backend):
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        keep_days: int = SPEND_KEEP_DAYS,
        calls_days: int = SPEND_CALLS_DAYS,
        busy_timeout_s: float = LEDGER_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path) if path is not None else default_spend_path()
        self.name = str(self.path)
        self.keep_days = keep_days
        self.calls_days = calls_days
        self.busy_timeout_s = busy_timeout_s
        self._db = Database(self.path, busy_timeout_s, _create)

    def close(self) -> None:
        self._db.close()

    # -- spent and reserved --------------------------------------------------

    @staticmethod
    def _used(conn: sqlite3.Connection, b: Budget, when: datetime) -> tuple[int, int]:
        where, args = _period(b, when)
        spent = conn.execute(f"SELECT COALESCE(SUM(cost), 0) FROM spend_scoped WHERE scope = ? AND {where}",
                             (scope_of(b), *args))  # fmt: skip
        held = conn.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM spend_holds WHERE scope = ? AND {where} AND expires > ?",
            (scope_of(b), *args, when.timestamp()),
        )
        return int(spent.fetchone()[0]), int(held.fetchone()[0])

    def reserve(self, r: Reservation, budgets: list[Budget]) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            with transaction(conn):
                conn.execute("DELETE FROM spend_holds WHERE expires <= ?", (r.start.timestamp(),))
                left: dict[str, int] = {}
                for b in budgets:
                    spent, held = self._used(conn, b, r.start)
                    room, need = b.limit - spent - held, r.amount_for(b)
                    if need > room:
                        raise Refused(b, max(room, 0), need)
                    left[b.id] = room - need
                day = period_key("day", r.start)
                conn.executemany(
                    "INSERT INTO spend_holds VALUES (?, ?, ?, ?, ?)",
                    [(r.id, scope, day, amount, r.expires.timestamp()) for scope, amount in r.holds()],
                )
                return left

        return self._db.run(run)

    def settle(self, r: Reservation, record: CallRecord) -> None:
        day = period_key("day", r.start)

        def run(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM spend_holds WHERE id = ?", (r.id,))
                fresh = conn.execute(
                    "INSERT OR IGNORE INTO spend_settled VALUES (?, ?)", (r.id, record.time.timestamp())
                ).rowcount
                if not fresh:
                    return  # settled before (a journal replay): counted once
                conn.execute(
                    "INSERT INTO spend_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.time.timestamp(), record.caller, record.group, record.deployment, record.input_tokens,
                     record.output_tokens, record.cached_tokens, record.reasoning_tokens, record.cost,
                     record.conversation_id, int(record.unpriced), int(record.estimated), record.called),
                )  # fmt: skip
                conn.execute(
                    """INSERT INTO spend_totals VALUES (?, ?, ?, ?, 1, ?, ?, ?)
                       ON CONFLICT (day, caller, grp) DO UPDATE SET cost = cost + excluded.cost, calls = calls + 1,
                       unpriced = unpriced + excluded.unpriced, input = input + excluded.input,
                       output = output + excluded.output""",
                    (day, record.caller, record.group, record.cost, int(record.unpriced), record.input_tokens,
                     record.output_tokens),
                )  # fmt: skip
                conn.executemany(
                    "INSERT INTO spend_scoped VALUES (?, ?, ?) ON CONFLICT (scope, day) DO UPDATE SET "
                    "cost = cost + excluded.cost",
                    [(scope, day, record.cost) for scope in r.charged(record.group)],  # the group that answered
                )
                oldest = period_key("day", record.time - timedelta(days=self.keep_days))
                conn.execute("DELETE FROM spend_totals WHERE day < ?", (oldest,))
                conn.execute("DELETE FROM spend_scoped WHERE day < ?", (oldest,))
                kept = (record.time - timedelta(days=self.keep_days)).timestamp()
                conn.execute("DELETE FROM spend_settled WHERE ts < ?", (kept,))
                conn.execute(
                    "DELETE FROM spend_calls WHERE ts < ?", ((record.time - timedelta(days=self.calls_days)).timestamp(),)
                )

        self._db.run(run)

    def release(self, r: Reservation) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM spend_holds WHERE id = ?", (r.id,))

        self._db.run(run)

    def state(self, budgets: list[Budget], now: datetime) -> dict[str, tuple[int, int]]:
        return self._db.run(lambda conn: {b.id: self._used(conn, b, now) for b in budgets})

    def totals(self, since_day: str) -> list[TotalRow]:
        def run(conn: sqlite3.Connection) -> list[TotalRow]:
            rows = conn.execute(
                "SELECT day, caller, grp, cost, calls, unpriced, input, output FROM spend_totals WHERE day >= ? "
                "ORDER BY day, caller, grp",
                (since_day,),
            )
            return [TotalRow(*row) for row in rows]

        return self._db.run(run)

    def calls(self, since: datetime) -> list[CallRecord]:
        def run(conn: sqlite3.Connection) -> list[CallRecord]:
            rows = conn.execute("SELECT * FROM spend_calls WHERE ts >= ? ORDER BY ts", (since.timestamp(),))
            return [
                CallRecord(datetime.fromtimestamp(r[0], timezone.utc), *r[1:10], bool(r[10]), bool(r[11]), r[12])
                for r in rows
            ]

        return self._db.run(run)
