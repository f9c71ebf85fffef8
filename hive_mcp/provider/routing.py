"""Routing a call across a config's deployments with litellm's Router, without its call loop.

The Router is asked three things only: which deployment of a group its
strategy picks (`select`), which deployments are healthy, and to count a failed
attempt against a deployment (`health().record_failure`, which cools it down
once it is over `allowed_fails`). It never sends a request and never retries:
the provider's loop sends every attempt and `Attempts` (with `retry.py`) decides
how many and how long to wait. Fallbacks are walked here, per call (`Route`).

A wildcard group (`model_name: "openai/*"`) takes any model name it matches:
litellm's own pattern router finds the entry and puts the requested model in
place of the `*` of its `litellm_params.model`; a literal `*` is never a model.
A deployment whose config variables are not set is not given to the Router:
routing never picks it, and a group left with none goes to its fallbacks.

With `redis_host`/`redis_url` in `router_settings`, the Router keeps cooldowns
and usage counters in Redis, so every process using the config shares them; when
Redis does not answer, the Router serves its in-memory state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..llms.config import ModelsConfig, listed_names
from ..llms.config_credentials import with_credential
from .fallbacks import FallbackTable
from ..observe import metrics
from .base import Message, ProviderError
from .errors import ErrorClass
from ..listeners import Listeners
from ..llms.catalogue import is_pattern, pattern_matches, some_names
from .offline import litellm
from ..state_store import TIMEOUT_S, StateStore

logger = logging.getLogger("hive_mcp.provider")

USAGE_TTL_S = 60  # one minute's counters, as litellm's usage-based routing keeps them
REDIS_WARNING_INTERVAL_S = 600.0
REDIS_TIMEOUTS = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}



@dataclass(frozen=True)
class Deployment:
    """One deployment as a call uses it. `label` (provider/model) is all that is ever shown of it."""

    id: str
    group: str
    model: str
    label: str
    raw: Mapping[str, Any]
    api_base: str | None = None
    """The endpoint its config entry names, or the credential it names does (None: the provider's own); may
    hold credentials: strip them."""


def deployment_label(model: str) -> str:
    """provider/model for a litellm model string; never a key or a base URL."""
    if "/" in model:
        return model
    try:
        provider = litellm.get_llm_provider(model)[1]
    except Exception:  # noqa: BLE001 - an unknown provider: the string as it is
        return model
    return f"{provider}/{model}"


class ModelRouter(Listeners):
    """A config's groups, aliases and fallbacks, and litellm's Router over its deployments."""

    def __init__(self, config: ModelsConfig) -> None:
        super().__init__()
        self.config = config
        settings = dict(config.router_settings)
        self.fallbacks = FallbackTable(settings)
        timeout = settings.get("timeout", config.litellm_settings.get("request_timeout"))
        self.timeout: float | None = None if timeout is None else float(timeout)
        uses_redis = config.router_shares_state
        if uses_redis:  # the state store's short timeouts, unless the config sets its own
            settings["cache_kwargs"] = {**REDIS_TIMEOUTS, **dict(settings.get("cache_kwargs") or {})}
        # The config's credential_list, as the proxy loads it: litellm puts the credential a deployment names
        # (`litellm_credential_name`) under each call's own arguments. Set whole, as the proxy does: this config's.
        from litellm.types.utils import CredentialItem

        litellm.credential_list = [
            CredentialItem.model_validate({**item, "display_name": None, "source": "config"})
            for item in config.credential_list
        ]
        # num_retries=0: the Router runs no retry loop of its own (it is never asked to call anyway).
        self.router = litellm.Router(
            model_list=[dict(d) for d in config.usable_entries()], **{**settings, "num_retries": 0}
        )
        self.groups = config.groups
        self.counts_usage = config.counts_usage
        self.cooldown_s = float(self.router.settings().as_dict().get("cooldown_time") or 0.0)
        self._deployments: dict[str, list[Deployment]] = {}
        for group in self.groups:
            found = self.router.registry().deployments(group) or []
            self._deployments[group] = [self._deployment(group, d) for d in found if d.get("model_name") == group]
        self._lock = threading.Lock()
        self._seen_cooling: dict[str, float] = {}  # deployment id -> the end of the last cooldown announced
        if uses_redis:
            _quiet_redis_warnings(redis_address(settings))

    # -- names ------------------------------------------------------------------------

    def resolve(self, name: str) -> str | None:
        """The group `name` calls (itself, the group an alias names, or the most specific wildcard group that
        matches it); None when it names nothing, and for a name that is itself a wildcard."""
        if is_pattern(name):
            return None
        if name in self._deployments:
            return name
        if name in self.config.aliases:
            return self.config.aliases[name]
        matched = self.router.registry().patterns().route(name)
        if matched:
            return str(matched[0]["model_name"])
        # A wildcard group none of whose deployments the Router has (their variables unset): its own error.
        return next((p for p in self.config.patterns() if pattern_matches(p, name)), None)

    def unknown(self, name: str) -> ProviderError:
        if is_pattern(name):
            what = f"{name!r} is a wildcard route: name a model it matches"
        else:
            what = f"no model group or alias {name!r} in the config"
        return ProviderError(
            f"{what}; callable: {some_names(listed_names(self.config))}", error_type="not_found", model=name, attempts=0,
        )

    def unusable(self, group: str, name: str) -> ProviderError:
        """The error of a call to `name` that no deployment of `group` can take (and no fallback can): none
        has its credentials, or (an alias to a wildcard group) the name does not match the pattern."""
        unset = [n for e, u in zip(self.config.model_list, self.config.unset) if e["model_name"] == group for n in u]
        if not unset:
            return self.unknown(name)
        return ProviderError(
            f"no deployment of group {group!r} can be called: not set: {', '.join(dict.fromkeys(unset))}",
            error_type="auth", model=group, attempts=0,
        )

    def route(self, name: str, refused: Mapping[str, str] | None = None) -> Route:
        """A call's route to `name`, never taking a fallback group in `refused` (group -> why a budget refused
        it); raises ProviderError when it names nothing or nothing of it can be called."""
        group = self.resolve(name)
        if group is None:
            raise self.unknown(name)
        route = Route(self, group, name, refused)
        if not route.members and not route.fall_back("auth"):
            raise self.unusable(group, name)
        return route

    def deployments(self, group: str) -> list[Deployment]:
        """The group's deployments as the config lists them (those with their credentials)."""
        return self._deployments[group]

    def members(self, group: str, name: str) -> list[Deployment]:
        """The deployments a call to `name` goes to in `group`: a wildcard group's with `name` put in place
        of the `*` (litellm's pattern router does it), none when `name` does not match it."""
        if not is_pattern(group):
            return self._deployments[group]
        found = self.router.registry().patterns().route(name, [group]) or []
        return [self._deployment(group, d) for d in found]

    def _deployment(self, group: str, raw: Mapping[str, Any]) -> Deployment:
        return _deployment(group, raw, self.config.credential_list)

    def fallback_groups(self, group: str, error_type: str, name: str | None = None) -> list[str]:
        """The fallback targets (as the config writes them: `hop` resolves each) after a call to `name` (by
        default `group` itself) answered by `group` failed with `error_type`, in order: litellm's lookup
        (`provider.fallbacks`), by the name called and then the group."""
        return self.fallbacks.targets((name or group, group), error_type)

    def hop(self, target: str, name: str) -> tuple[str, str] | None:
        """The group a fallback `target` goes to after a call to `name`, and the name its deployments are sent
        (what a wildcard group puts in place of its `*`): a group itself; an alias's group; a wildcard group the
        target is a name of, sent as that name. A target that is itself a wildcard group keeps the name called
        (a pattern is never a model). None: it names nothing callable now."""
        if target in self._deployments:
            return target, name if is_pattern(target) else target
        group = self.resolve(target)
        return (group, target) if group is not None else None

    def reach(self, name: str) -> dict[str, str]:
        """The group `name` calls, then every group its fallbacks (any category, chained) may go to, each with
        the name its deployments are sent; a wildcard group only for a name it takes. Empty: `name` names nothing."""
        group = self.resolve(name)
        if group is None:
            return {}
        found = {group: name}
        queue = [(group, name)]
        while queue:
            g, sent = queue.pop(0)
            for target in self.fallbacks.every_target((sent, g)):
                hop = self.hop(target, sent)
                if hop is None or hop[0] in found or (is_pattern(hop[0]) and not pattern_matches(hop[0], hop[1])):
                    continue
                found[hop[0]] = hop[1]
                queue.append(hop)
        return found

    # -- health -----------------------------------------------------------------------

    def cooling(self, deployments: list[Deployment]) -> dict[str, float]:
        """Deployment id -> when (epoch seconds) its cooldown ends, for those cooling down now."""
        try:
            active = self.router.health().cooldowns.get_active_cooldowns([d.id for d in deployments], None)
        except Exception as exc:  # noqa: BLE001 - health is advice: without it every deployment is tried
            logger.debug("cooldown state unavailable: %s", type(exc).__name__)
            return {}
        return _ends(active)

    async def cooling_async(self, deployments: list[Deployment]) -> dict[str, float]:
        """`cooling`, read without blocking the event loop (the call path's way, Redis or not).

        A cooldown seen here first (another process put it in Redis) is a catalogue change too.
        """
        try:
            active = await self.router.health().cooldowns.async_get_active_cooldowns([d.id for d in deployments], None)
        except Exception as exc:  # noqa: BLE001 - health is advice: without it every deployment is tried
            logger.debug("cooldown state unavailable: %s", type(exc).__name__)
            return {}
        ends = _ends(active)
        now = time.time()
        with self._lock:
            new = {i: end for i, end in ends.items() if self._seen_cooling.get(i, 0.0) < end - 0.001}
            self._seen_cooling.update(new)
        for end in new.values():
            self._changed_until(end - now)
        return ends

    async def pick(
        self, deployments: list[Deployment], name: str, tried: set[str], messages: list[Message],
        cooling: Mapping[str, float],
    ) -> tuple[Deployment | None, set[str]]:
        """The next of a group's `deployments` and the ids healthy now: the strategy's pick (for the group or
        wildcard name `name`) while none was tried this round, else the first healthy one not yet tried; None
        when every one is cooling down or was tried. `cooling` is their cooldowns as `cooling_async` read them.

        When the strategy has no pick (every deployment over its rpm/tpm limit), the first
        healthy one is sent all the same: the upstream's own answer then decides.
        """
        healthy = [d for d in deployments if d.id not in cooling]
        healthy_ids = {d.id for d in healthy}
        untried = [d for d in healthy if d.id not in tried]
        if not untried:
            return None, healthy_ids
        if len(untried) > 1 and len(untried) == len(healthy):
            try:
                chosen = await self.router.select(name, {"messages": messages})
            except Exception as exc:  # noqa: BLE001 - no pick: take the first healthy
                logger.debug("router select for %s failed: %s", name, type(exc).__name__)
            else:
                dep_id = (chosen.get("model_info") or {}).get("id") if isinstance(chosen, Mapping) else None
                for d in untried:
                    if d.id == dep_id:
                        return d, healthy_ids
        return untried[0], healthy_ids

    @staticmethod
    def soonest(deployments: list[Deployment], cooling: Mapping[str, float]) -> Deployment:
        """The deployment whose cooldown ends first (when every one of the group is cooling down)."""
        return min(deployments, key=lambda d: cooling.get(d.id, 0.0))

    def failed(self, deployment: Deployment, exc: BaseException, info: ErrorClass) -> bool:
        """Count a failed attempt (`exc`, classified as `info`) against `deployment`, by litellm's rule; True (and
        the listeners told) when it enters cooldown. A failure that was the request's own fault (`info.callers`)
        is not counted: one caller's bad requests never cool a deployment down for every other. Without a status
        the failure goes as litellm's Router reports one (""): counted, never a cooldown by itself."""
        if not isinstance(exc, Exception) or info.callers:
            return False
        try:
            cooled = self.router.health().record_failure(deployment.id, exc, "" if info.status is None else info.status)
        except Exception as err:  # noqa: BLE001 - losing one failure count must not fail the call
            logger.debug("could not record a failure of %s: %s", deployment.label, type(err).__name__)
            return False
        if cooled:
            logger.warning("%s of group %s is cooling down", deployment.label, deployment.group)
            until = time.time() + self.cooldown_s
            metrics.cooldown(deployment.group, deployment.label, until)
            with self._lock:
                self._seen_cooling[deployment.id] = until
            self._changed_until(self.cooldown_s)
        return bool(cooled)

    def _changed_until(self, seconds: float) -> None:
        """A deployment entered cooldown for `seconds`: tell the listeners now and when it ends."""
        self.notify()
        timer = threading.Timer(max(0.0, seconds) + 0.01, self.notify)
        timer.daemon = True
        timer.start()

    async def succeeded(self, deployment: Deployment, tokens: int) -> None:
        """Count a success against `deployment` for this minute, and its request and tokens where the strategy
        routes by them.

        The Router counts only the calls it runs itself. Its failure rate (without allowed_fails, a deployment
        of a group of several cools down when over half of its calls this minute failed) reads the successes
        its success callback counts: without them every failure would be all of the deployment's calls. The
        usage counters are its own keys in its own store (memory, and Redis when configured, so processes
        share them).
        """
        params = {"metadata": {"model_group": deployment.group}, "model_info": {"id": deployment.id}}
        try:
            self.router.sync_deployment_callback_on_success({"litellm_params": params}, None, None, None)
        except Exception as exc:  # noqa: BLE001 - a lost count must not fail a call that succeeded
            logger.debug("success of %s not counted: %s", deployment.label, type(exc).__name__)
        if not self.counts_usage:
            return
        minute = time.strftime("%H-%M", time.gmtime())
        prefix = f"{deployment.id}:{deployment.model}"
        store = self.router.health().store
        try:
            await store.async_increment_cache(f"{prefix}:rpm:{minute}", 1, ttl=USAGE_TTL_S)
            if tokens:
                await store.async_increment_cache(f"{prefix}:tpm:{minute}", tokens, ttl=USAGE_TTL_S)
        except Exception as exc:  # noqa: BLE001 - a lost count must not fail a call that succeeded
            logger.debug("usage of %s not counted: %s", deployment.label, type(exc).__name__)

    def attempt_kwargs(self, kwargs: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
        """litellm's keyword arguments for one attempt on `deployment` (its litellm_params over the request's,
        and the routing metadata the Router's usage tracking reads from litellm's callbacks)."""
        from litellm.router_attempt import attempt_kwargs

        call = dict(
            attempt_kwargs(
                "acompletion", kwargs, deployment.raw, model_group=deployment.group,
                default_litellm_params={}, timeout=self.timeout,
            )
        )
        call.update(num_retries=0, max_retries=0)
        return call



def _ends(active: Any) -> dict[str, float]:
    """Deployment id -> when its cooldown ends (epoch seconds), from litellm's active cooldown entries."""
    return {dep_id: float(v.get("timestamp", 0.0)) + float(v.get("cooldown_time", 0.0)) for dep_id, v in active}


class _RedisWarnings(logging.Filter):
    """litellm warns on every Redis command that fails while Redis is away; one line says it all.

    When this process has a state store (HIVE_MCP_STATE_URL) on the Router's Redis, its breaker is the one
    notion of that Redis being away, with one warning when it goes and one when it is back: litellm's lines
    are dropped. Otherwise one line per `REDIS_WARNING_INTERVAL_S`."""

    def __init__(self) -> None:
        super().__init__()
        self.last = float("-inf")
        self.addresses: set[tuple[str, int]] = set()
        """The Routers' Redis (host, port): a state store on one of them shares its breaker."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or "redis" not in record.getMessage().lower():
            return True
        if any(s.address in self.addresses for s in StateStore.all()):
            return False  # the same Redis: the state store tells its outages (every call settles through it)
        now = time.monotonic()
        if now - self.last < REDIS_WARNING_INTERVAL_S:
            return False
        self.last = now
        record.msg, record.args = (
            "Redis did not answer: routing uses this process's own cooldowns and counters until it does "
            "(litellm: %s)", (record.getMessage(),),
        )
        return True


_REDIS_FILTER = _RedisWarnings()


def redis_address(settings: Mapping[str, Any]) -> tuple[str, int]:
    """The (host, port) of the Redis a Router's settings name."""
    if settings.get("redis_url"):
        parts = urlsplit(str(settings["redis_url"]))
        return parts.hostname or "localhost", parts.port or 6379
    return str(settings.get("redis_host") or "localhost"), int(settings.get("redis_port") or 6379)


def _quiet_redis_warnings(address: tuple[str, int]) -> None:
    _REDIS_FILTER.addresses.add(address)
    for name in ("LiteLLM", "LiteLLM Router"):
        lg = logging.getLogger(name)
        if _REDIS_FILTER not in lg.filters:
            lg.addFilter(_REDIS_FILTER)


def _deployment(group: str, raw: Mapping[str, Any], credentials: tuple[dict[str, Any], ...] = ()) -> Deployment:
    params = with_credential(raw.get("litellm_params") or {}, credentials)
    model, base = str(params.get("model")), params.get("api_base")
    return Deployment(id=str((raw.get("model_info") or {}).get("id")), group=group, model=model,
                      label=deployment_label(model), raw=raw, api_base=base if isinstance(base, str) else None)


class Route:
    """One call's way through the groups: the group now tried, its deployments tried this round, the fallbacks."""

    def __init__(self, router: ModelRouter, group: str, name: str, refused: Mapping[str, str] | None = None) -> None:
        self.router = router
        self.name = name  # the name called: its fallbacks are looked up by it, then by its group
        self.sent = name
        """The name the group now tried is called by: a wildcard group's deployments take it as their model."""
        self.refused = dict(refused or {})
        """Fallback groups a budget refused -> why: never taken."""
        self.skipped: list[str] = []
        """Why each fallback this call did not take was refused."""
        self.called = group
        self.group = group
        self.members = router.members(group, name)
        self.visited = {group}
        self.tried: set[str] = set()
        self.healthy_ids: set[str] = set()
        self.deployment: Deployment | None = None

    async def next(self, messages: list[Message]) -> Deployment:
        """Choose the deployment for the next attempt (the group's cooldowns read once for it). A group whose
        every deployment is cooling down goes to its fallback at once; without one, the soonest back is tried."""
        while True:
            cooling = await self.router.cooling_async(self.members)
            if any(d.id not in cooling for d in self.members) or not self.fall_back("cooldown"):
                break
        name = self.sent if is_pattern(self.group) else self.group
        chosen, self.healthy_ids = await self.router.pick(self.members, name, self.tried, messages, cooling)
        if chosen is None:  # every deployment tried or cooling down: a new round
            self.tried.clear()
            chosen, self.healthy_ids = await self.router.pick(self.members, name, self.tried, messages, cooling)
            if chosen is None:
                chosen = self.router.soonest(self.members, cooling)
        self.tried.add(chosen.id)
        self.deployment = chosen
        return chosen

    def failed(self, exc: BaseException, info: ErrorClass) -> None:
        if self.deployment is not None and self.router.failed(self.deployment, exc, info):
            self.healthy_ids.discard(self.deployment.id)

    async def succeeded(self, tokens: int) -> None:
        if self.deployment is not None:
            await self.router.succeeded(self.deployment, tokens)

    def has_other(self) -> bool:
        """Whether a deployment of the group healthy at the last pick was not tried this round (the next
        attempt goes there at once)."""
        return bool(self.healthy_ids - self.tried)

    def cooling_down(self) -> bool:
        """Whether every deployment of the group is cooling down now (none was healthy at the last pick, or
        the last one failed into cooldown)."""
        return not self.healthy_ids

    def fall_back(self, error_type: str) -> bool:
        """Move to the next group of the called group's fallbacks for `error_type` (one with a deployment
        that can be called); False when none is left."""
        for written in self.router.fallback_groups(self.called, error_type, self.name):
            hop = self.router.hop(written, self.name)
            if hop is None or hop[0] in self.visited:
                continue
            target, sent = hop
            self.visited.add(target)
            if target in self.refused:
                logger.warning("group %s failed (%s): its fallback %s is refused by a budget", self.group, error_type,
                               target)  # fmt: skip
                self.skipped.append(self.refused[target])
                continue
            members = self.router.members(target, sent)
            if not members:
                logger.warning("fallback group %s has no deployment that can take %s: skipped", target, sent)
                continue
            logger.warning("group %s failed (%s): falling back to %s", self.group, error_type, target)
            self.group, self.members, self.sent = target, members, sent
            self.tried = set()
            self.healthy_ids = set()
            return True
        return False
