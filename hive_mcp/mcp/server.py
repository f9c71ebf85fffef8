"""`build_server`: the tools, the resources and the change notifications, put together as one `MCPServer`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    PaginatedRequestParams,
    PromptReference,
    ReadResourceRequestParams,
    ResourceTemplateReference,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, SubscriptionBus

from .. import __version__
from ..dashboard.app import dashboard_apps
from ..dumps import DumpStore
from ..calls import Conversations, standard_chain
from ..files import FileAccess
from ..limits import Limits
from ..llms.catalogue import Catalogue
from ..llms.static import StaticCatalogue
from ..observe.propagation import HttpTraceContext
from ..provider.base import LLMProvider
from ..conversations import ConversationLocks, ConversationStore, StoreError
from ..sdk_compat import lowlevel_server
from ..observe import metrics
from ..spend import Spend
from ..listeners import Throttle
from ..tasks import TaskEngine
from ..tasks.wire import TasksExtension, install_tasks
from .bus import ProcessBus, running as running_bus
from .model_list import ModelsView
from ..defaults import DEFAULT_HEARTBEAT_S, MAX_PAGE_LIMIT, RESULT_INLINE_TOKENS
from ..results import ResultStore
from .constants import CONVERSATIONS_URI, DEFAULT_RESOURCE_PAGE_SIZE, INDEX_URI
from .constants import MODEL_URI_TEMPLATE, PROGRESS_INTERVAL_S, conversation_uri, logger
from .conversation_views import conversation_routes, list_conversations_tool
from .errors import unknown_names
from .callers import caller
from .notify import ChangeNotifier, ChangeSource, Touched
from .paging import ResultPages
from .resources import DASHBOARD_ROUTE, ResourceHandlers
from .task_tools import completion_task_tools
from .routes import ResourceRouter
from .tools import ToolHandlers, tools
from .usage_view import USAGE_URI, usage_route

TASK_CANCEL = "tasks/cancel"
"""The bus signal asking the instance that runs a task to cancel it."""

GAUGE_INTERVAL_S = 15.0
"""How often the conversations kept are counted for the metrics (a scrape's usual interval)."""

INSTRUCTIONS = (
    "LLM completion: `complete` returns a reply; `stream_complete` streams it as progress "
    "notifications; `list_models` (or hive://models) says what `model` may name. Failed calls are "
    "recorded as resources under hive://failed-requests (list them with `list_failed_requests`)."
)
CONVERSATION_INSTRUCTIONS = (
    " Results carry a conversation_id: pass it back to continue that conversation, with any model "
    "(fork: true continues a copy); list yours with `list_conversations` or read hive://conversations."
)


def budget_gauges(spend: Spend, usage: Throttle) -> None:
    """Every budget's limit, spent and reserved, as the operator's metrics show them: once at start-up (so a
    configured budget has its series before any call settles, after a restart too), then after each settled call
    (`usage`, told by the ledger's writer) and each call a budget refused, when they matter most. The ledger is
    read on the throttle's own thread (never the event loop's, where a refusal is told), at most once a second."""
    gauges = Throttle(background=True)
    gauges.add_listener(lambda: _publish_budgets(spend))
    usage.add_listener(gauges.changed)
    spend.on_refused = gauges.changed
    gauges.changed()


def _publish_budgets(spend: Spend) -> None:
    """The budget gauges, as the ledger stands. A ledger that does not answer leaves them as they were (its outage
    is told once, by the ledger)."""
    try:
        budgets = spend.usage(None, settled=False).budgets
    except Exception:  # noqa: BLE001 - the gauges wait for the next change
        return
    for b in budgets:
        metrics.budget(b.budget, limit_usd=b.limit_usd, spent_usd=b.spent_usd, reserved_usd=b.reserved_usd)


async def conversation_gauge(conversations: ConversationStore) -> None:
    """The conversations kept, as the operator's metrics show them, counted every `GAUGE_INTERVAL_S` (a store
    that does not answer is counted the next time)."""
    while True:
        with contextlib.suppress(StoreError):
            metrics.conversations_open(await conversations.count())
        await anyio.sleep(GAUGE_INTERVAL_S)


def build_server(
    provider: LLMProvider,
    store: DumpStore,
    *,
    default_model: str,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    name: str = "hive-mcp",
    resource_page_size: int = DEFAULT_RESOURCE_PAGE_SIZE,
    limits: Limits | None = None,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
    default_max_tokens: int | None = None,
    catalogue: Catalogue | None = None,
    conversations: ConversationStore | None = None,
    spend: Spend | None = None,
    bus: SubscriptionBus | None = None,
    dump_watch: Any = None,
    admins: Iterable[str] = (),
    results: ResultStore | None = None,
    result_inline_tokens: int = RESULT_INLINE_TOKENS,
    tasks: TaskEngine | None = None,
    offered: Collection[str] = (),
    files: FileAccess | None = None,
) -> MCPServer:
    """Build the MCP server. Run it with `server.run(transport=..., host=..., port=...)`.

    `heartbeat_s` is how long a waiting call (queued, on the model, or streaming)
    goes without a progress notification, `progress_interval_s` the least time
    between two that carry text (faster text is gathered into one);
    `resource_page_size` is how many dumps one `resources/list` page holds;
    `limits` is the cost control (default: `Limits()`, which bounds only
    concurrency, deadline and input size; use one `Limits` per server).
    `default_max_tokens` is sent when a call names none (capped by `limits`);
    None leaves it to the provider's own default. `catalogue` is what `model`
    may name (default: the default model, and any litellm model string).
    `conversations` is the store that keeps them (None: conversations off,
    results carry no id). `spend` is the ledger and the budgets (None: calls are not metered).
    `bus` carries change events to `subscriptions/listen` streams (default: in this
    process only; a `bus.ProcessBus`, such as Redis's, crosses processes); `dump_watch` (a
    `dumps.DumpDirectoryWatch`) tells of dumps other processes wrote to the same directory.
    `admins` are the callers who see every caller's dumps, conversations, results and spend (the others see
    their own).
    `results` keeps answers longer than `result_inline_tokens` as `hive://results/{id}` (paging.py; None: every
    answer is returned whole). `tasks` runs `complete` and `stream_complete` as tasks when a client asks (None:
    no tasks).
    `offered` names the tools to offer (HIVE_MCP_TOOLS; empty: every tool); the others are not listed or called.
    `files` is where a call's `files` may be read from (None: nowhere, such a call is refused).
    """
    if heartbeat_s <= 0:
        raise ValueError("heartbeat_s must be > 0")
    if not 1 <= resource_page_size <= MAX_PAGE_LIMIT:
        raise ValueError(f"resource_page_size must be from 1 to {MAX_PAGE_LIMIT}")
    if default_max_tokens is not None and default_max_tokens < 1:
        raise ValueError("default_max_tokens must be at least 1 (or None for the provider's default)")
    limits = limits if limits is not None else Limits()
    if not limits.model_allowed(default_model):
        logger.info("the default model %s matches no allowed pattern; it is allowed anyway", default_model)
    catalogue = catalogue if catalogue is not None else StaticCatalogue(default_model)
    models = ModelsView(catalogue, default_model, limits)
    touched = Touched(lambda cid: (CONVERSATIONS_URI, conversation_uri(cid)))
    steps = None
    if conversations is not None:
        locks = ConversationLocks(limits.queue_timeout_s)
        steps = Conversations(conversations, provider, locks, on_change=touched.touch, dumps=store)
    chain = standard_chain(
        provider, limits, catalogue, default_model=default_model, default_max_tokens=default_max_tokens,
        conversations=steps, spend=spend,
        files=files,
    )  # fmt: skip
    resources = ResourceHandlers(store, resource_page_size, models, frozenset(admins))
    kept = Touched(lambda _: ())  # a kept answer is new: its owner's list changed, nothing to update
    paging = None if results is None else ResultPages(
        results, provider, result_inline_tokens, frozenset(admins), resource_page_size, kept.touch
    )  # fmt: skip
    tool_handlers = ToolHandlers(
        chain, store, models, heartbeat_s, progress_interval_s, spend, frozenset(admins), pages=paging
    )
    # Every resource, once; the first page lists the fixed ones in this order.
    router = ResourceRouter(
        [
            *resources.models_routes(),
            *([usage_route(spend)] if spend is not None else []),
            *(conversation_routes(conversations, frozenset(admins)) if conversations is not None else []),
            *resources.dump_routes(),
            *(paging.routes() if paging is not None else []),
            DASHBOARD_ROUTE,
        ],
        resources.pages if paging is None else paging.pages_with(resources.pages),
    )
    task_extension = None
    if tasks is not None:
        task_extension = TasksExtension(tasks, completion_task_tools(catalogue, default_model), caller)
    usage = Throttle()  # a settled call changes hive://usage: told at most once a second
    if spend is not None:
        spend.on_change = usage.changed
        if metrics.enabled():  # without prometheus-client the gauges go nowhere: the ledger is not read for them
            budget_gauges(spend, usage)
    bus = bus if bus is not None else InMemorySubscriptionBus()
    watched = [] if dump_watch is None else [
        ChangeSource(dump_watch.add_listener, dump_watch.remove_listener, lambda: (INDEX_URI,), list_changed=True,
                     owners=dump_watch.changed_callers)
    ]  # fmt: skip
    notifier = ChangeNotifier(
        [
            *watched,
            # A dump written or pruned changes the list and the index, of its caller.
            ChangeSource(store.add_listener, store.remove_listener, lambda: (INDEX_URI,), list_changed=True,
                         owners=store.changed_callers),  # fmt: skip
            # A deployment entering or leaving cooldown changes the catalogue's content, not the list.
            ChangeSource(catalogue.add_listener, catalogue.remove_listener, models.uris, list_changed=False),
            # A conversation created or continued changes the index and that conversation; told like a dump.
            ChangeSource(touched.add_listener, touched.remove_listener, touched.updated, list_changed=True,
                         owners=touched.owners),
            # A long answer kept changes its caller's list.
            ChangeSource(kept.add_listener, kept.remove_listener, kept.updated, list_changed=True, owners=kept.owners),
            # A settled call changes its caller's spend (and the overall, which only admins and `local` see).
            ChangeSource(usage.add_listener, usage.remove_listener, lambda: (USAGE_URI,), list_changed=False,
                         owners=usage.owners),  # fmt: skip
        ],
        bus,
        frozenset(admins),
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with running_bus(bus), notifier.running(), anyio.create_task_group() as tg:
            tg.start_soon(tool_handlers.beats.run)
            if conversations is not None and metrics.enabled():
                tg.start_soon(conversation_gauge, conversations)
            yield {}
            tg.cancel_scope.cancel()

    served = [
        t for t in tools(tool_handlers)
        + ([list_conversations_tool(conversations, frozenset(admins))] if conversations is not None else [])
        + ([paging.tool()] if paging is not None else [])
        if not offered or t.name in offered
    ]
    server: MCPServer = MCPServer(
        name,
        version=__version__,
        instructions=INSTRUCTIONS + (CONVERSATION_INSTRUCTIONS if conversations is not None else ""),
        tools=served,
        subscriptions=notifier.bus,
        lifespan=lifespan,
        middleware=[notifier.middleware, unknown_names(frozenset(t.name for t in served))],
        extensions=[
            dashboard_apps(),  # the dashboard's ui:// page (MCP Apps); its tool is in tools()
            *([task_extension] if task_extension is not None else []),
        ],
    )
    # Outermost, before the SDK's OpenTelemetry middleware: the HTTP traceparent header, where `_meta` has none.
    server.middleware.insert(0, HttpTraceContext())
    if tasks is not None and task_extension is not None:
        install_tasks(server, task_extension)
        if isinstance(bus, ProcessBus):  # a cancel reaches the instance running the task at once
            tasks.tell_others = lambda task_id: bus.signal(TASK_CANCEL, task_id)
            bus.on_signal(TASK_CANCEL, tasks.cancel_here)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        await router.check_own(ctx, params.uri)
        notifier.subscribe(ctx, params.uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        notifier.unsubscribe(ctx, params.uri)
        return EmptyResult()

    @server.completion()
    async def complete_argument(
        ref: ResourceTemplateReference | PromptReference, argument: CompletionArgument, _: CompletionContext | None
    ) -> Completion | None:
        """Argument completion: the model names that start with what was typed, for hive://models/{name} (a
        prompt the server does not have is refused before: `errors.unknown_names`)."""
        if isinstance(ref, ResourceTemplateReference) and ref.uri == MODEL_URI_TEMPLATE and argument.name == "name":
            return models.complete(argument.value)
        return None

    # MCPServer's resource handlers return whole lists with no cursor; these page.
    low = lowlevel_server(server)
    low.add_request_handler("resources/list", PaginatedRequestParams, router.list_resources)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, router.list_resource_templates)
    low.add_request_handler("resources/read", ReadResourceRequestParams, router.read_resource)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    listen = low.get_request_handler("subscriptions/listen")
    if listen is not None:  # the SDK's own listen streams, asked first whether each URI is the caller's to hear of

        async def listen_own(ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams) -> Any:
            for uri in params.notifications.resource_subscriptions or ():
                await router.check_own(ctx, uri)
            return await notifier.listen(ctx, lambda: listen.handler(ctx, params))

        low.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen_own)
    return server
