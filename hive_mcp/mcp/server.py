"""`build_server`: the tools, the resources and the change notifications, put together as one `MCPServer`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp_types import (
    EmptyResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from .. import __version__
from ..dumps import DumpStore
from ..limits import Limits
from ..models.catalogue import Catalogue
from ..provider.base import LLMProvider
from ..sdk_compat import lowlevel_server
from .constants import DEFAULT_HEARTBEAT_S, DEFAULT_RESOURCE_PAGE_SIZE, MAX_LIST_LIMIT, PROGRESS_INTERVAL_S, logger
from .notify import ChangeNotifier
from .resources import ResourceHandlers
from .tools import ToolHandlers, tools

INSTRUCTIONS = (
    "LLM completion: `complete` returns a reply; `stream_complete` streams it as progress "
    "notifications. Failed calls are recorded as resources under hive://failed-requests "
    "(list them with `list_failed_requests`)."
)


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
    catalogue: Catalogue | None = None,  # noqa: ARG001 - read by the models tools (MCP side, another branch)
) -> MCPServer:
    """Build the MCP server. Run it with `server.run(transport=..., host=..., port=...)`.

    `heartbeat_s` is how long a waiting call (queued, on the model, or streaming)
    goes without a progress notification, `progress_interval_s` the least time
    between two that carry text (faster text is gathered into one);
    `resource_page_size` is how many dumps one `resources/list` page holds;
    `limits` is the cost control (default: `Limits()`, which bounds only
    concurrency, deadline and input size; use one `Limits` per server).
    `default_max_tokens` is sent when a call names none (capped by `limits`);
    None leaves it to the provider's own default.
    """
    if heartbeat_s <= 0:
        raise ValueError("heartbeat_s must be > 0")
    if not 1 <= resource_page_size <= MAX_LIST_LIMIT:
        raise ValueError(f"resource_page_size must be from 1 to {MAX_LIST_LIMIT}")
    if default_max_tokens is not None and default_max_tokens < 1:
        raise ValueError("default_max_tokens must be at least 1 (or None for the provider's default)")
    limits = limits if limits is not None else Limits()
    if not limits.model_allowed(default_model):
        logger.info("the default model %s matches no allowed pattern; it is allowed anyway", default_model)
    tool_handlers = ToolHandlers(
        provider, store, default_model, heartbeat_s, limits, progress_interval_s, default_max_tokens
    )
    resources = ResourceHandlers(store, resource_page_size)
    bus = InMemorySubscriptionBus()
    notifier = ChangeNotifier(store, bus)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with notifier.running():
            yield {}

    server: MCPServer = MCPServer(
        name,
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=tools(tool_handlers),
        subscriptions=bus,
        lifespan=lifespan,
        middleware=[notifier.middleware],
    )

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        notifier.subscribe(ctx, params.uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        notifier.unsubscribe(ctx, params.uri)
        return EmptyResult()

    # MCPServer's resource handlers return whole lists with no cursor; these page.
    low = lowlevel_server(server)
    low.add_request_handler("resources/list", PaginatedRequestParams, resources.list_resources)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, resources.list_resource_templates)
    low.add_request_handler("resources/read", ReadResourceRequestParams, resources.read_resource)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    return server
