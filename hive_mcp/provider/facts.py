"""The catalogue the MCP layer reads, filled from the config, litellm's model information and live cooldowns.

Built before litellm is imported (the server answers `initialize` first): names
come from the config alone; model information (context window, prices,
capabilities) is read from litellm when `groups()` is first asked, and the
cooldown state from the Router once the provider has made one (`attach`).
Nothing here holds a key or a base URL: a deployment is its provider and model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..listeners import Listeners
from ..llms.catalogue import DeploymentInfo, ModelGroup, split_model
from ..llms.config import ModelsConfig, hidden_names, listed_names
from ..llms.config_credentials import with_credential
from ..llms.static import StaticCatalogue

if TYPE_CHECKING:
    from .routing import ModelRouter


__all__ = [
    "LOCAL_PROVIDERS", "ConfigCatalogue", "DefaultCatalogue", "config_facts", "default_facts",
    "model_facts", "price_of",
]

PER_MILLION = 1_000_000
LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "lm_studio", "llamafile"})
"""Providers that run on the caller's own machine: no price in the map means free. A loopback `api_base` alone
does not say so (a LiteLLM proxy or a tunnel there forwards to paid providers)."""

# model_info keys (litellm's and the proxy's names) -> ModelGroup fields.
_INFO_FIELDS = {
    "max_input_tokens": "max_input_tokens",
    "max_output_tokens": "max_output_tokens",
    "supports_function_calling": "supports_tools",
    "supports_vision": "supports_vision",
    "supports_reasoning": "supports_reasoning",
    "supports_response_schema": "supports_json_schema",
}
_PRICE_FIELDS = {"input_cost_per_token": "input_cost_per_mtok", "output_cost_per_token": "output_cost_per_mtok"}


def model_facts(model: str, *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """ModelGroup fields for a litellm model string: litellm's model information, then each override mapping
    (a config's `model_info`, a deployment's custom pricing in `litellm_params`) over it."""
    from .offline import litellm

    info: dict[str, Any] = {}
    try:
        info = dict(litellm.get_model_info(model))
    except Exception:  # noqa: BLE001 - litellm does not know the model: the config's own facts only
        pass
    for extra in overrides:
        info.update({k: v for k, v in extra.items() if v is not None})
    if info.get("max_output_tokens") is None and isinstance(info.get("max_tokens"), int):
        info["max_output_tokens"] = info["max_tokens"]
    facts: dict[str, Any] = {field: info.get(key) for key, field in _INFO_FIELDS.items() if info.get(key) is not None}
    for key, field in _PRICE_FIELDS.items():
        price = info.get(key)
        if isinstance(price, (int, float)) and not isinstance(price, bool):
            facts[field] = round(float(price) * PER_MILLION, 6)
    return facts


def _priced(facts: dict[str, Any], model: str, given: bool) -> dict[str, Any]:
    """`facts` under the price rule, the one place it is: prices the config gives (`given`, 0 included) stand;
    litellm's map's stand unless both are zero or one is missing; then a local provider's model is free and any
    other is unpriced (`unpriced: True`, its zeros dropped): a zero in the map is a gap, not a free model."""
    cost = (facts.get("input_cost_per_mtok"), facts.get("output_cost_per_mtok"))
    if given or (None not in cost and cost != (0, 0)):
        return facts
    if split_model(model)[0] in LOCAL_PROVIDERS:
        return {**facts, "input_cost_per_mtok": 0.0, "output_cost_per_mtok": 0.0}
    return {**{k: v for k, v in facts.items() if not (k in _PRICE_FIELDS.values() and v == 0)}, "unpriced": True}


def price_of(facts: Mapping[str, Any]) -> tuple[float, float] | None:
    """USD per input and per output token from priced facts (`config_facts`, `default_facts`); None: unpriced."""
    cost = (facts.get("input_cost_per_mtok"), facts.get("output_cost_per_mtok"))
    if facts.get("unpriced") or cost[0] is None or cost[1] is None:
        return None
    return cost[0] / PER_MILLION, cost[1] / PER_MILLION


def default_facts(model: str) -> dict[str, Any]:
    """`model_facts` of a model called without a config, under the price rule."""
    return _priced(model_facts(model), model, given=False)


def config_facts(entry: Mapping[str, Any]) -> dict[str, Any]:
    """`model_facts` for a config's deployment entry, under its custom prices (in `litellm_params`) and its
    `model_info`, and the price rule: the config gives prices with both in one of the two, or `model_info:
    {free: true}`."""
    params = entry.get("litellm_params") or {}
    info = dict(entry.get("model_info") or {})
    if info.get("free") is True:
        info.update({k: 0.0 for k in _PRICE_FIELDS})
    overrides = ({k: params[k] for k in _PRICE_FIELDS if k in params}, info)
    given = any(all(o.get(k) is not None for k in _PRICE_FIELDS) for o in overrides)
    model = str(params.get("model"))
    return _priced(model_facts(model, *overrides), model, given)


def _credentials_present(model: str, params: Mapping[str, Any]) -> bool:
    if params.get("api_key"):
        return True
    from .offline import litellm

    try:
        return bool(litellm.validate_environment(model=model, api_base=params.get("api_base")).get("keys_in_environment"))
    except Exception:  # noqa: BLE001 - a provider litellm cannot check: assume the request will tell
        return True


class DefaultCatalogue(StaticCatalogue):
    """Without a config: `StaticCatalogue`'s entry for the default model, completed with litellm's facts
    about it (context, prices, capabilities) and whether its key is present, asked once on first use."""

    def __init__(self, model: str, api_key: str | None = None) -> None:
        super().__init__(model)
        self._api_key = api_key
        self._facts: dict[str, Any] | None = None

    def groups(self) -> list[ModelGroup]:
        if self._facts is None:
            name = self.callable_names()[0]
            present = _credentials_present(name, {"api_key": self._api_key})
            self._facts = {**default_facts(name), "credentials_present": present}
        return [group.model_copy(update=self._facts) for group in super().groups()]


class ConfigCatalogue(Listeners):
    """A config's groups and aliases; deployments healthy or cooling down as the Router has them."""

    any_model = False

    def __init__(self, config: ModelsConfig) -> None:
        super().__init__()
        self.config = config
        self._listed = listed_names(config)
        self._hidden = hidden_names(config)  # asked by admission on every call: read from the config once
        self._router: ModelRouter | None = None
        self._facts: dict[str, tuple[dict[str, Any], bool]] = {}

    def attach(self, router: ModelRouter) -> None:
        """Read cooldowns from `router` from now on, and pass its changes to this catalogue's listeners."""
        self._router = router
        router.add_listener(self.notify)

    def callable_names(self) -> list[str]:
        return list(self._listed)

    def hidden_names(self) -> list[str]:
        return list(self._hidden)

    def groups(self) -> list[ModelGroup]:
        return [self._group(name) for name in self.config.groups]

    def _group(self, name: str) -> ModelGroup:
        entries = [(i, e, self.config.usable(i)) for i, e in enumerate(self.config.model_list) if e["model_name"] == name]
        if name not in self._facts:
            facts = config_facts(entries[0][1])
            present = any(
                usable and _credentials_present(
                    str(e["litellm_params"]["model"]), with_credential(e["litellm_params"], self.config.credential_list)
                )
                for _, e, usable in entries
            )
            self._facts[name] = (facts, present)
        facts, present = self._facts[name]
        aliases = [a for a, g in self.config.aliases.items() if g == name and a in self._listed]
        return ModelGroup(name=name, aliases=aliases,
                          deployments=self._deployments(name, entries), credentials_present=present, **facts)

    def _deployments(self, name: str, entries: list[tuple[int, dict[str, Any], bool]]) -> list[DeploymentInfo]:
        """The group's deployments in the config's order: cooling down or not as the Router has them, and
        those whose variables are not set as taking no calls (`credentials: false`)."""
        router = self._router
        routed = iter(router.deployments(name)) if router is not None else iter(())
        cooling = router.cooling(router.deployments(name)) if router is not None else {}
        out = []
        for index, entry, usable in entries:
            provider, model = split_model(str(entry["litellm_params"]["model"]))
            if not usable:
                out.append(DeploymentInfo.without_credentials(provider, model, self.config.unset[index]))
                continue
            d = next(routed, None)
            if d is not None:  # its label names the provider litellm infers for a bare model name
                provider, model = split_model(d.label)
            until = cooling.get(d.id) if d is not None else None
            out.append(DeploymentInfo(
                provider=provider, model=model, healthy=until is None,
                cooldown_until=None if until is None else datetime.fromtimestamp(until, timezone.utc),
            ))
        return out
