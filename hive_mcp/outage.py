"""A dependency's outages (the state store's Redis, the spend ledger behind its journal), each told once: one
warning when it goes away, one when it is back, however many calls fail or succeed in between."""

from __future__ import annotations

import logging
import math
import threading
import time

from .observe import metrics

__all__ = ["Outage"]


class Outage:
    """Whether a dependency is down, and since when; logs `down` at the first failure of an outage (formatted
    with the error's class name, then `args`) and `up` at the first success after it.

    While down it is worth asking again only every `retry_s` (`usable()`), so an outage costs a caller at most
    one timeout now and then. Safe to share between threads. Each outage counts once in
    `hive_mcp_state_outages_total{store=<store>}`."""

    def __init__(
        self, logger: logging.Logger, down: str, up: str, *args: object, retry_s: float = 0.0, store: str = "state"
    ) -> None:
        self._logger = logger
        self.store = store
        self._down, self._up, self._args = down, up, args
        self.retry_s = retry_s
        self._since: float | None = None
        self._back: float | None = None
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """Up, or down for `retry_s` since the last failure: worth another try."""
        with self._lock:
            return self._since is None or time.monotonic() - self._since >= self.retry_s

    def since_back(self) -> float:
        """Seconds since the dependency last came back: 0 while it is down, infinite if it never went away."""
        with self._lock:
            if self._since is not None:
                return 0.0
            return math.inf if self._back is None else time.monotonic() - self._back

    def failed(self, exc: BaseException) -> None:
        """A call failed with `exc`: the warning when this starts an outage."""
        with self._lock:
            first = self._since is None
            self._since = time.monotonic()
        if first:
            metrics.state_outage(self.store)
            self._logger.warning(self._down, type(exc).__name__, *self._args)

    def worked(self) -> None:
        """A call succeeded: the warning when this ends an outage."""
        with self._lock:
            was_down, self._since = self._since is not None, None
            if was_down:
                self._back = time.monotonic()
        if was_down:
            self._logger.warning(self._up)
