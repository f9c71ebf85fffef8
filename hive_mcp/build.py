"""Opening what a server is made of from the settings (and models config): the provider (litellm
loads in the background once started), the dump store, the conversation store, the spend ledger,
change sharing between instances, the MCP server, and the dashboard's sources. One process, one
of each; `hive_mcp.serve` and each HTTP worker (`hive_mcp.http.workers`) call `build`.

litellm (seconds to import) and mcp are imported inside the functions that need them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exposure import allowed_models
from .logs import redact_logs, route_litellm_logs
from .settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .conversations import ConversationStore
    from .dashboard import Sources
    from .dumps import DumpStore
    from .files import FileAccess
    from .llms.catalogue import Catalogue
    from .llms.config import ModelsConfig
    from .provider.base import LLMProvider
    from .provider.deferred import DeferredProvider
    from .spend import Budgets, Spend
    from .tasks import TaskEngine

__all__ = ["App", "build"]


@dataclass(frozen=True)
class App:
    """What one process serves, as `build` opened it: the MCP server; its provider (litellm loads once
    `provider.start()` is called); the dump store; the conversation store (None when off) and the spend
    ledger; the catalogue of what `model` may name; `sources`, the dashboard's sections as one caller
    (None: everyone) may see them; and the task engine (None when tasks are off). Serving stops the task engine
    and closes the conversation store as it ends."""

    server: MCPServer
    provider: DeferredProvider
    store: DumpStore
    catalogue: Catalogue
    conversations: ConversationStore | None
    spend: Spend
    sources: Callable[[str | None], Sources]
    tasks: TaskEngine | None

    async def aclose(self) -> None:
        """The end of serving over stdio, on the loop that served: the task engine stops (a job still running
        reads failed), then the conversation store closes (every turn this process holds is given back)."""
        if self.tasks is not None:
            await self.tasks.aclose()
        if self.conversations is not None:
            await self.conversations.aclose()

# litellm_settings that are module-wide switches in litellm (the config loader's allow-list names them).
_MODULE_SETTINGS = ("modify_params", "force_ipv4", "ssl_verify")


def build(
    settings: Settings, config: ModelsConfig | None = None, tokens: tuple[str, ...] = (), budgets: Budgets | None = None
) -> App:
    """The application for these settings (and models config): the MCP server, its provider (which loads
    litellm once started), its stores, its catalogue, and the dashboard's `Sources` of one caller (its
    Models section reads the server's catalogue).
    `budgets` are the ones `serve` checked; without them they are built here (a worker, a test).

    Importing litellm takes seconds: it happens in a background thread after
    `start()`, so the server answers `initialize` and `tools/list` without waiting.
    Every key and password in the config is a secret of the dumps and the provider.
    """
    from .limits import Limits
    from .mcp import build_server
    from .dashboard import Sources
    from .dashboard.models import models_source
    from .mcp.model_list import ModelsView
    from .provider.facts import ConfigCatalogue, DefaultCatalogue
    from .provider.deferred import DeferredProvider
    from .provider.retry import RetryPolicy
    from .backends import open_backends, server_secrets
    from .observe import labels, tracing

    tracing.configure()
    if config is None:  # the models a caller may name are the operator's: they are labels
        labels.name_models((settings.model, *settings.allowed_models), (settings.model, *settings.allowed_models))
    key = settings.api_key_value
    secrets = server_secrets(settings, config, tokens)
    redact_logs(secrets)
    catalogue = ConfigCatalogue(config) if config is not None else DefaultCatalogue(settings.model, key)

    def load_provider() -> LLMProvider:
        from .provider.litellm import LiteLLMProvider  # imports litellm: seconds

        route_litellm_logs(settings.log_level)
        extra: dict[str, Any] = {}
        router = retry = None
        if config is not None:
            from .provider.routing import ModelRouter

            extra = _apply_litellm_settings(config)
            router = ModelRouter(config)
            labels.name_models(router.groups, (d.label for g in router.groups for d in router.deployments(g)))
            if isinstance(catalogue, ConfigCatalogue):
                catalogue.attach(router)
            if config.num_retries is not None:
                retry = RetryPolicy(max_retries=config.num_retries)
        provider = LiteLLMProvider(
            model=settings.model,
            api_key=key,
            api_base=settings.api_base,
            retry=retry,
            dump_store=backends.dumps,  # opened below, before the provider is started
            deadline_s=settings.deadline_s,
            router=router,
            secrets=secrets,
            capture_content=settings.otel_capture_content == "on",
            **extra,
        )
        provider.warm_up()
        gc.collect()
        # litellm's import leaves some 400,000 objects that live as long as the process; frozen,
        # the collector stops walking them on every full collection (a stall under streaming load).
        gc.freeze()
        return provider

    provider = DeferredProvider(load_provider, model=settings.model)
    from .spend.setup import configured_budgets

    if budgets is None:
        budgets = configured_budgets(settings, config, tokens)
    backends = open_backends(settings, secrets, provider, budgets)
    store, conversations, spend = backends.dumps, backends.conversations, backends.spend
    limits = Limits.from_settings(settings.model_copy(update={"allowed_models": allowed_models(settings, config)}))
    server = build_server(
        provider,
        store,
        default_model=settings.model,
        heartbeat_s=settings.heartbeat_s,
        default_max_tokens=settings.default_max_tokens,
        limits=limits,
        catalogue=catalogue,
        conversations=conversations,
        spend=spend,
        bus=backends.bus,
        dump_watch=backends.dump_watch,
        admins=settings.admins,
        results=backends.results,
        result_inline_tokens=settings.result_inline_tokens,
        tasks=backends.tasks,
        offered=settings.tools,
        files=file_access(settings, secrets),
    )
    models = ModelsView(catalogue, settings.model, limits)
    from .dumps import CallerDumps
    from .mcp.usage_view import usage_source

    def sources(who: str | None) -> Sources:
        """The dashboard's sections as `who` may see them (None: everyone's)."""
        return Sources(models=models_source(CallerDumps(store, who), models.listing), spend=usage_source(spend, who))

    return App(server, provider, store, catalogue, conversations, spend, sources, backends.tasks)


def file_access(settings: Settings, secrets: tuple[str, ...]) -> FileAccess:
    """Where calls may read files (HIVE_MCP_FILE_ROOTS; over stdio, unset, the working directory), within the
    settings' limits. The counting processes start with the first call that has enough to share, and stop with
    this process."""
    import atexit
    from pathlib import Path

    from .files import CountPool, FileAccess, FileLimits, FileRoots

    roots = FileRoots.configured(settings.file_roots, settings.transport, Path.cwd())
    pool = CountPool()
    atexit.register(pool.close)
    return FileAccess(roots, FileLimits(settings.max_file_bytes, settings.max_files_bytes), secrets, pool)


def _apply_litellm_settings(config: ModelsConfig) -> dict[str, Any]:
    """Set the allow-listed module-wide litellm switches; return the per-call ones (drop_params)."""
    from .provider.offline import litellm

    for name in _MODULE_SETTINGS:
        if name in config.litellm_settings:
            setattr(litellm, name, config.litellm_settings[name])
    return {k: v for k, v in config.litellm_settings.items() if k == "drop_params"}

