"""A config's catalogue in memory, for tests of everything that reads one (the `Catalogue` protocol)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from hive_mcp.listeners import Listeners
from hive_mcp.llms.catalogue import DeploymentInfo, ModelGroup

COOL_UNTIL = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
"""When `two_groups`' cooling deployment comes back."""


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

    def hidden_names(self) -> list[str]:
        return []

    def cool_down(self, group: int, deployment: int, until: datetime) -> None:
        with self._lock:
            d = self._groups[group].deployments[deployment]
            d.healthy, d.cooldown_until = False, until
        self.notify()


def two_groups(
    fast: str = "fast", smart: str = "smart", *, fast_facts: dict[str, Any] | None = None,
    smart_facts: dict[str, Any] | None = None,
) -> FakeCatalogue:
    """`fast` (two deployments, the second cooling down until COOL_UNTIL, alias `quick`, priced, 128k window) and
    `smart` (one deployment), each with the further facts given."""
    return FakeCatalogue(
        [
            ModelGroup(
                name=fast,
                aliases=["quick"],
                deployments=[
                    DeploymentInfo(provider="openai", model="gpt-4o-mini"),
                    DeploymentInfo(provider="azure", model="gpt-4o-mini-eu", healthy=False, cooldown_until=COOL_UNTIL),
                ],
                max_input_tokens=128_000,
                max_output_tokens=16_384,
                input_cost_per_mtok=0.15,
                output_cost_per_mtok=0.6,
                **(fast_facts or {}),
            ),
            ModelGroup(
                name=smart, deployments=[DeploymentInfo(provider="anthropic", model="claude-sonnet-4-5")],
                **(smart_facts or {}),
            ),
        ]
    )
