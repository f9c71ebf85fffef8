"""Change listeners: callbacks kept under a lock, each called in turn. A leaf module."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Listeners"]

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
