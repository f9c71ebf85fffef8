"""Change listeners: callbacks kept under a lock, each called in turn, and `Throttle`, listeners told at most
once an interval. A leaf module."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Listeners", "Throttle"]

logger = logging.getLogger("hive_mcp")


class Listeners:
    """`add_listener` / `remove_listener`, and `notify` to call each callback in turn (from any thread).

    A failing callback is logged and the others still run: one listener's fault is
    not the caller's (the Router noticing a cooldown, the catalogue passing it on,
    a dump or a ledger row written).
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()

    def add_listener(self, callback: Callable[[], None]) -> None:
        with self._callbacks_lock:
            self._callbacks.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self._callbacks_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def listening(self) -> bool:
        """Whether any callback is registered."""
        with self._callbacks_lock:
            return bool(self._callbacks)

    def notify(self) -> None:
        with self._callbacks_lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - see the class docstring
                logger.exception("a change listener failed")


class Throttle(Listeners):
    """Listeners told of changes at most once per `interval_s`: a burst is one call now and one at the end.

    `changed(caller)` names whose things changed; `owners()` drains them (so only they hear of it). `background`:
    the listeners are always called on the throttle's own timer thread, never in the caller's, for listeners that
    block and callers that must not (the event loop)."""

    def __init__(
        self, interval_s: float = 1.0, monotonic: Callable[[], float] = time.monotonic, *, background: bool = False
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.background = background
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None
        self._owners: set[str] = set()

    def owners(self) -> frozenset[str]:
        with self._lock:
            owners, self._owners = frozenset(self._owners), set()
        return owners

    def changed(self, caller: str | None = None) -> None:
        with self._lock:
            if caller is not None:
                self._owners.add(caller)
            wait = self._last + self.interval_s - self._monotonic()
            if wait > 0 or self.background:
                if self._timer is None:
                    self._timer = threading.Timer(max(wait, 0.0), self._fire)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last = self._monotonic()
        self.notify()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = self._monotonic()
        self.notify()
