"""Admission, the first step: whether the call may reach the upstream at all, and the model it names resolved.

Every rule here runs before any upstream request, so a refused call costs
nothing and leaves no dump (`Limits` holds each rule; this step asks them in
order): the model (one of the catalogue's callable names when it has a config,
else the allow-list), the max_tokens cap, the deadline, the input size. Then the
model is resolved once (`ModelRef`: its groups, prices, deployments, window),
for every step after this one; the provider may refuse the name there (without
a config, one litellm cannot place: `LiteLLMProvider.resolve`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

import anyio

from ..limits import LimitError, Limits
from ..llms.catalogue import Catalogue, is_pattern, pattern_matches, some_names
from ..provider.base import COMPLETE_MAX_TOKENS, STREAM_MAX_TOKENS, LLMProvider, ModelRef
from ..text import shorten
from .call import Call, Outcome
from .chain import Next

__all__ = ["Admission", "RESOLVED_KEPT"]

RESOLVED_KEPT = 256
"""How many model names outside the catalogue stay resolved at once (`Admission.kept`)."""


@dataclass
class Admission:
    limits: Limits
    catalogue: Catalogue
    provider: LLMProvider
    default_model: str
    default_max_tokens: int | None = None
    """Sent when a call names none (capped by the limits); None leaves it to the provider's own default."""
    kept: int = RESOLVED_KEPT
    """How many names beyond the catalogue's own stay resolved."""
    _refs: dict[str, ModelRef] = field(default_factory=dict)
    """The catalogue's names and the default, each resolved once: the config and litellm's local map do not
    change while the server runs."""
    _others: OrderedDict[str, ModelRef] = field(default_factory=OrderedDict)
    """Any other name (a litellm model string without a config, one a wildcard group takes), the last `kept`
    resolved: a caller naming a new one on every call does not grow the server's memory with each."""
    _names: frozenset[str] | None = None
    """The default and the catalogue's callable names, read on the first resolve."""

    async def __call__(self, call: Call, next: Next) -> Outcome:
        limits = self.limits
        model = self.model(call.model)
        # What the provider sends given no max_tokens: a cap is compared with it when the server has no default.
        keyword_default = STREAM_MAX_TOKENS if call.stream else COMPLETE_MAX_TOKENS
        default = self.default_max_tokens
        asked = call.params.max_tokens
        max_tokens = limits.max_tokens_for(asked, default if default is not None else keyword_default)
        if max_tokens is None and asked is None:
            max_tokens = default  # None: the provider's own default applies
        deadline = limits.deadline_for(call.params.deadline_s)
        tools = call.params.tools
        limits.check_input_size(
            {
                "prompt": call.prompt,
                "messages": list(call.messages) if call.prompt is None else None,
                "system": call.system or None,
                "tools": [t.model_dump(mode="json") for t in tools] if tools else None,
            }
        )
        ref = self.known(model)
        if ref is None:
            async with call.observer.waiting():  # on a provider still loading: the call waits, it is not refused
                ref = await self.resolve(model)
        return await next(replace(call, ref=ref, max_tokens=max_tokens or keyword_default, deadline_s=deadline))

    def model(self, requested: str | None) -> str:
        """The model the call goes to: `requested` (None: the default), when the catalogue (with a config) or the
        allow-list (without one, or for a name a wildcard group takes) lets it; else a refusal naming `model`."""
        if self.catalogue.any_model:
            return self.limits.check_model(requested, self.default_model)
        names = self.catalogue.callable_names()
        if requested is None or requested in names or requested in self.catalogue.hidden_names():
            return requested or self.default_model
        if any(pattern_matches(p, requested) for p in names if is_pattern(p)):
            # A wildcard route takes it: the allow-list (the config's patterns, or the operator's) decides.
            return self.limits.check_model(requested, self.default_model)
        raise LimitError("model", f"{shorten(requested, 80)!r} is not callable here; use {some_names(names)}")

    def known(self, model: str) -> ModelRef | None:
        """`model` as resolved before, if it is still kept."""
        return self._refs.get(model) or self._others.get(model)

    async def resolve(self, model: str) -> ModelRef:
        ref = self.known(model)
        if ref is not None:
            return ref
        await self.provider.ready()  # resolving reads the config: not in a worker thread held by a load
        ref = await anyio.to_thread.run_sync(self.provider.resolve, model)
        if self._names is None:
            shown, hidden = self.catalogue.callable_names(), self.catalogue.hidden_names()
            self._names = frozenset((self.default_model, *shown, *hidden))
        if model in self._names:
            self._refs[model] = ref
        else:
            self._others[model] = ref
            if len(self._others) > self.kept:
                self._others.popitem(last=False)
        return ref
