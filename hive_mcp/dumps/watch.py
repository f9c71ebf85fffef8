"""A watch of the dump directory: how one process hears of dumps another process wrote there.

Several workers (or instances on one machine) share one dump directory. Each
store tells its own listeners about its own writes; the others learn of them
here, from the directory's modification time (one `stat` per interval, in a
daemon thread that runs only while someone listens). A change this process made
itself was already told by its store, so the watch takes note of it and stays
quiet; as every dump change means the same thing to clients (the list and the
index changed), a remote change coinciding with a local one loses nothing.

Whose dumps changed (`changed_callers`, so that only they hear of it) is told by
the ids that came and went since the last look: a new dump's caller is read from
it, a removed one's is remembered from when it came. A dump that was there
before the watch began and goes is nobody's known: admins and `local` hear of it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ..listeners import Listeners
from ..outage import Outage
from .store import DumpStore

__all__ = ["DEFAULT_WATCH_INTERVAL_S", "DumpDirectoryWatch"]


DEFAULT_WATCH_INTERVAL_S = 0.5

logger = logging.getLogger(__name__)


class DumpDirectoryWatch(Listeners):
    """Calls its listeners (from its thread) when the dump directory changes other than by `store`; the
    thread runs while it has listeners."""

    def __init__(self, store: DumpStore, interval_s: float = DEFAULT_WATCH_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.store = store
        self.interval_s = interval_s
        super().__init__()
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._seen: int | None = None
        self._ids: set[str] = set()  # the ids at the last look (touched only by the watch's thread, and at start)
        self._callers: dict[str, str] = {}  # id -> caller, of the dumps that came while watching
        self._changed: set[str] = set()
        self._outage = Outage(
            logger,
            "dump watch could not list the dumps (%s): changes other processes make are told to admins and local",
            "dump watch lists the dumps again",
            store="dumps",
        )

    def changed_callers(self) -> frozenset[str]:
        """The callers whose dumps other processes wrote or removed since this was last asked."""
        with self._lock:
            changed, self._changed = frozenset(self._changed), set()
        return changed

    def _look(self) -> None:
        ids = set(self.store.ids())
        callers = {self._callers.pop(i) for i in self._ids - ids if i in self._callers}
        for dump_id in ids - self._ids:
            if (caller := self.store.caller_of(dump_id)) is not None:
                self._callers[dump_id] = caller
                callers.add(caller)
        self._ids = ids
        with self._lock:
            self._changed |= callers

    def _mtime(self) -> int | None:
        try:
            return os.stat(self.store.directory).st_mtime_ns
        except OSError:
            return None

    def add_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            super().add_listener(callback)
            if self._stop is None:
                self._stop = threading.Event()
                self._seen = self._mtime()
                self._ids, self._callers = set(self.store.ids()), {}
                self.store.add_listener(self._local_change)
                threading.Thread(target=self._run, args=(self._stop,), name="hive-mcp-dump-watch", daemon=True).start()

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            super().remove_listener(callback)
            if not self.listening() and self._stop is not None:
                self._stop.set()
                self._stop = None
                self.store.remove_listener(self._local_change)

    def _local_change(self) -> None:
        self._seen = self._mtime()  # told by the store already

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            now = self._mtime()
            if now == self._seen:
                continue
            self._seen = now
            try:
                self._look()
            except Exception as exc:  # the listing failed: who hears is only narrower (admins, local)
                self._outage.failed(exc)
            else:
                self._outage.worked()
            self.notify()  # a broken listener is logged and does not end the watch
