"""The catalogue of a server without a config: its default model, and any litellm model string besides.

Nothing here asks litellm (the MCP layer builds it when given no catalogue, and
must not import litellm): the entry holds what the model string itself says, and
leaves the figures litellm would know (context window, prices) unset. It never
changes, so its listeners are never called.
"""

from __future__ import annotations

from collections.abc import Callable

from .catalogue import DeploymentInfo, ModelGroup, split_model


class StaticCatalogue:
    """One group named after the default model; `any_model`: other litellm model strings are callable too."""

    any_model = True

    def __init__(self, default_model: str) -> None:
        provider, model = split_model(default_model)
        self._group = ModelGroup(name=default_model, deployments=[DeploymentInfo(provider=provider, model=model)])

    def groups(self) -> list[ModelGroup]:
        return [self._group.model_copy(deep=True)]

    def callable_names(self) -> list[str]:
        return [self._group.name]

    def hidden_names(self) -> list[str]:
        return []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Nothing to hear: this catalogue never changes."""

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Nothing to remove: no listener is kept."""
