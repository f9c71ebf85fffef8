"""A config's catalogue in memory, for tests of everything that reads one (the `Catalogue` protocol)."""

from __future__ import annotations

import threading
from datetime import datetime

from hive_mcp.listeners import Listeners
from hive_mcp.llms.catalogue import ModelGroup


class FakeCatalogue(Listeners):
    """Groups as given; `cool_down` changes one deployment and tells the listeners, as the Router's would."""

    def __init__(self, groups: list[ModelGroup], *, any_model: bool = False) -> None:
        super().__init__()
        self.any_model = any_model
        self._groups = groups
        self._lock = threading.Lock()

    @property
    def listeners(self) -> list[object]:
        """The callbacks kept now."""
        with self._callbacks_lock:
            return list(self._callbacks)

    def groups(self) -> list[ModelGroup]:
        with self._lock:
            return [g.model_copy(deep=True) for g in self._groups]

    def callable_names(self) -> list[str]:
        groups = self.groups()
        return [g.name for g in groups] + [a for g in groups for a in g.aliases]

    def cool_down(self, group: int, deployment: int, until: datetime) -> None:
        with self._lock:
            d = self._groups[group].deployments[deployment]
            d.healthy, d.cooldown_until = False, until
        self.notify()
