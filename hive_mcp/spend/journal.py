"""The spend journal: every settled call is written here before the ledger's backend takes it.

Each process appends to its own file in `<hive home>/spend-journal/` (0600 in a
0700 directory), holding an exclusive `flock` on it while it lives. A settled
call is one JSON line, written before `Backend.settle` is asked (the kernel
holds it: a process killed at any point loses nothing); once the backend took
it, a `done` line follows (replaying a call the backend already holds is a
no-op, as settling is idempotent by call id). When the backend did not take
it, the file is fsynced before the caller goes on: the journal is then the
row's only copy, and it waits there until the backend answers again. (On the
happy path the row's durability is the backend's own: SQLite in WAL with
`synchronous=NORMAL`, Redis as configured; an fsync per call would cost more
than the whole settle.) A process replaying takes over the files no living
process holds a lock on, then removes them: when it starts, and every
`ORPHANS_EVERY_S` after (a peer sharing the hive home may stop while its calls
wait).

While calls are pending, one warning says the journal started; one says it
drained. A file whose calls are all in the backend is truncated.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..home import hive_home, private_dir
from ..outage import Outage
from ..text import compact_json
from .ledger import Backend, CallRecord, Reservation

__all__ = ["JOURNAL_DIRNAME", "Journal", "default_journal_dir"]

logger = logging.getLogger("hive_mcp.spend")

JOURNAL_DIRNAME = "spend-journal"
ROTATE_BYTES = 1 << 20
"""A file past this while calls are pending is replaced by one holding only those: a journal under steady load
(never empty at the moment a call is done) stays small."""
ORPHANS_EVERY_S = 10.0
"""How often a live process looks for the files of processes that stopped with calls pending (a peer sharing the
hive home that stopped during an outage), beside the look when it starts."""
_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def default_journal_dir() -> Path:
    return hive_home() / JOURNAL_DIRNAME


def _encode(r: Reservation, record: CallRecord) -> bytes:
    def plain(obj: Any) -> dict[str, Any]:
        # A shallow read of the fields (their values are scalars and tuples of scalars): `asdict` deep-copies,
        # which cost more than the rest of the line, and the line is written before the answer goes out.
        return {
            f.name: v.isoformat() if isinstance(v := getattr(obj, f.name), datetime) else v for f in fields(obj)
        }

    return (compact_json({"r": plain(r), "c": plain(record)}) + "\n").encode()


def _decode(entry: dict[str, Any]) -> tuple[Reservation, CallRecord]:
    r, c = dict(entry["r"]), dict(entry["c"])
    for d, keys in ((r, ("start", "expires")), (c, ("time",))):
        for k in keys:
            d[k] = datetime.fromisoformat(d[k])
    return Reservation(**r), CallRecord(**c)


def _pending(lines: list[bytes]) -> dict[str, tuple[Reservation, CallRecord]]:
    """The calls of a journal file without their `done` line; a torn last line (a crash mid-write) is skipped."""
    out: dict[str, tuple[Reservation, CallRecord]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "done" in entry:
            out.pop(entry["done"], None)
        else:
            r, c = _decode(entry)
            out[r.id] = (r, c)
    return out


class Journal:
    """This process's journal file in `directory`, in front of `backend`. Blocking: call from worker threads."""

    def __init__(self, directory: Path, backend: Backend, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.backend = backend
        self.clock = clock
        self._fd: int | None = None
        self._path: Path | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Reservation, CallRecord]] = {}
        self._settling: set[str] = set()  # calls a thread is writing into the backend now
        self._orphans_at: float | None = None  # when the next look for stopped processes' files is due
        self._outage = Outage(
            logger, "spend: the ledger did not take a settled call (%s): calls are kept in %s and written to %s "
            "once it answers", f"spend: the journal is drained: every kept call is in {backend.name}",
            directory, backend.name, store="spend_ledger",
        )  # fmt: skip

    @property
    def pending(self) -> int:
        """Calls written here and not yet in the backend."""
        with self._lock:
            return len(self._pending)

    def _file(self) -> int:
        if self._fd is None:
            private_dir(self.directory)
            path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _OPEN, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else holds it
            self._fd, self._path = fd, path
        return self._fd

    def settle(self, r: Reservation, record: CallRecord) -> bool:
        """`keep`, then `commit`: the call here, then into the backend."""
        self.keep(r, record)
        return self.commit(r, record)

    def keep(self, r: Reservation, record: CallRecord) -> None:
        """Write the call here: one append to a local file, in the kernel's hands once it returns (a killed
        process does not lose it), so the backend's write may follow later (`commit`)."""
        line = _encode(r, record)
        with self._lock:
            self._pending[r.id] = (r, record)
            try:
                os.write(self._file(), line)
            except OSError as exc:  # the local disk: the backend is still asked, the row only not crash-proof
                logger.warning("spend: a settled call could not be journaled in %s: %s", self.directory, exc)

    def commit(self, r: Reservation, record: CallRecord) -> bool:
        """The kept call into the backend, then the calls still waiting (not those other threads are settling
        now); False when the backend did not take this one (it stays here, fsynced, and a later `replay`
        writes it)."""
        if self._into_backend([(r, record)]):
            return self.replay() or True  # this one is in; those still waiting go when they can
        with self._lock:  # the journal is now the only copy: on the disk before the caller goes on
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    logger.warning("spend: the journal in %s could not be synced: %s", self.directory, exc)
        return False

    def replay(self) -> bool:
        """Every waiting call (this process's, and those of dead processes' files) into the backend, oldest
        first; True when none is left waiting."""
        if self._orphans_at is None or self.clock() >= self._orphans_at:
            self._adopt_orphans()
        with self._lock:
            todo = sorted(
                (rc for call_id, rc in self._pending.items() if call_id not in self._settling),
                key=lambda rc: rc[1].time,
            )
        return self._into_backend(todo) if todo else True

    def _into_backend(self, calls: list[tuple[Reservation, CallRecord]]) -> bool:
        """Each call into the backend, skipping one another thread is settling; False at the first failure."""
        for r, record in calls:
            with self._lock:
                if r.id in self._settling or r.id not in self._pending:
                    continue
                self._settling.add(r.id)
            try:
                self.backend.settle(r, record)
            except Exception as exc:  # noqa: BLE001 - the backend away: the call waits here
                self._outage.failed(exc)
                return False
            else:
                self._done(r.id)
            finally:
                with self._lock:
                    self._settling.discard(r.id)
        with self._lock:
            drained = not (self._pending.keys() - self._settling)
        if drained:
            self._outage.worked()
        return True

    def _done(self, call_id: str) -> None:
        with self._lock:
            if self._pending.pop(call_id, None) is None or self._fd is None:
                return
            try:
                if not self._pending:
                    os.ftruncate(self._fd, 0)  # everything is in the backend: nothing to replay after a crash
                elif os.write(self._fd, (compact_json({"done": call_id}) + "\n").encode()) and (
                    os.fstat(self._fd).st_size > ROTATE_BYTES
                ):
                    self._rotate()
            except OSError:
                pass  # a replay of this call after a crash is a no-op: settling is idempotent by call id

    def _rotate(self) -> None:
        """A new file with the pending calls only (synced), then the old one goes. A crash in between leaves
        both, and replaying a call twice counts it once. Under the lock."""
        old_fd, old_path = self._fd, self._path
        self._fd = None
        fd = self._file()
        os.write(fd, b"".join(_encode(r, record) for r, record in self._pending.values()))
        os.fsync(fd)
        if old_fd is not None:
            os.close(old_fd)
        if old_path is not None:
            old_path.unlink(missing_ok=True)

    def _adopt_orphans(self) -> None:
        """Take over the files of processes that stopped or died with calls pending (no lock held on them)."""
        self._orphans_at = self.clock() + ORPHANS_EVERY_S
        try:
            paths = sorted(self.directory.glob("*.jsonl"))
        except OSError:
            return
        for path in paths:
            try:
                fd = os.open(path, os.O_RDWR | _OPEN)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # a living process's journal (this one's too: its lock is on another descriptor)
            try:
                with open(fd, "rb", closefd=False) as f:
                    found = _pending(f.read().splitlines())
                if found:
                    with self._lock:
                        own = self._file()  # adopted calls move to this process's file, then the orphan goes
                        for r, record in found.values():
                            if r.id not in self._pending:
                                os.write(own, _encode(r, record))
                                self._pending[r.id] = (r, record)
                        os.fsync(own)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Let go of this process's file; removed when nothing in it is pending."""
        with self._lock:
            fd, path, self._fd, self._path = self._fd, self._path, None, None
            empty = not self._pending
        if fd is None:
            return
        if empty and path is not None:
            path.unlink(missing_ok=True)
        os.close(fd)
