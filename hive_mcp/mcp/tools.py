"""The tools: `complete`, `stream_complete`, `list_failed_requests` and `list_models`, defined together in `tools()`.

Each tool publishes the compacted JSON schema of its own pydantic argument model
and validates the raw arguments itself (args.py), so a bad argument comes back as
one line naming the field. Cost control (`Limits`) is asked after the arguments
validate and before the provider is called: the model (one of the catalogue's
callable names when it has a config, else the allow-list), the max_tokens cap,
the deadline, the input size, then a slot among the calls in flight. A refusal is
an `isError` result naming the argument; nothing reaches the upstream and nothing
is dumped. While a call waits (for a slot, or on the model) it sends heartbeat
progress notifications when its request carries a progress token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool as MCPTool

from ..dashboard.app import TOOL_META, DashboardArgs, dashboard_tool
from ..dashboard.data import Sources
from ..dashboard.models import models_source
from ..dumps import DumpStore, InvalidCursor
from ..limits import Busy, LimitError, Limits
from ..provider.base import COMPLETE_MAX_TOKENS, STREAM_MAX_TOKENS, LLMProvider, LLMResponse, Message, ProviderError
from .args import CompleteArgs, ListFailedRequestsArgs, StreamArgs, parse_args, raw_arguments
from .model_list import ListModelsArgs, ModelList, ModelsView
from .conversations import Call, ConversationService, caller
from ..defaults import DEFAULT_HEARTBEAT_S
from ..tokens import owner_scope
from .constants import PROGRESS_INTERVAL_S
from .errors import ArgumentError, error_result, failure_text
from .relay import Pacer, ProgressSender, StreamState, heartbeats, read_stream, relay_progress
from .resources import caller_dumps, list_page
from .results import CompletionResult, FailedRequestPage, completion_result, json_result
from .schema import describe, tool_schema
from .spending import Delivery, Meter, with_spend_today
from .usage_view import usage_source

if TYPE_CHECKING:
    from ..spend import Spend

@dataclass
class ToolHandlers:
    """The tool functions of one server, bound to its provider, store, catalogue and limits."""

    provider: LLMProvider
    store: DumpStore
    default_model: str
    models: ModelsView
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    limits: Limits = field(default_factory=Limits)
    progress_interval_s: float = PROGRESS_INTERVAL_S
    default_max_tokens: int | None = None
    conversations: ConversationService | None = None
    spend: Spend | None = None
    admins: frozenset[str] = frozenset()
    """Callers who see every caller's dumps (and, with `spend`, spend), as the stdio user does."""
    pacer: Pacer = field(init=False)
    """Shared by every stream: how far behind the event loop is, one process's fact."""

    def __post_init__(self) -> None:
        self.pacer = Pacer(base_s=self.progress_interval_s)

    def _prepare(self, args: CompleteArgs, keyword_default: int) -> tuple[list[Message], dict[str, Any]]:
        """The provider call for valid `args`, once every limit allows it; raises LimitError.

        `keyword_default` is what the provider sends when given no max_tokens: a cap
        is compared with it when the server has no default of its own.
        """
        limits = self.limits
        if self.models.check(args.model):
            model = args.model or self.default_model
        else:
            model = limits.check_model(args.model, self.default_model)
        default = self.default_max_tokens
        max_tokens = limits.max_tokens_for(args.max_tokens, default if default is not None else keyword_default)
        if max_tokens is None and args.max_tokens is None:
            max_tokens = default  # None: the provider's own default applies
        deadline = limits.deadline_for(args.deadline_s)
        messages = args.provider_messages()
        tools = args.provider_tools()
        limits.check_input_size(
            {
                "prompt": args.prompt,
                "messages": messages if args.messages is not None else None,
                "system": args.system,
                "tools": [t.model_dump(mode="json") for t in tools] if tools else None,
            }
        )
        kwargs: dict[str, Any] = {
            "system": args.system or "",
            "tools": tools,
            "response_format": args.response_format,
            "json_mode": args.json_mode,
            "model": model,
            "deadline": deadline,
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if args.temperature is not None:
            kwargs["temperature"] = args.temperature
        if args.max_retries is not None:
            kwargs["max_retries"] = args.max_retries
        return messages, kwargs

    def _call(
        self, ctx: Context, keyword_default: int, model: type[CompleteArgs] = CompleteArgs
    ) -> tuple[CompleteArgs, list[Message], dict[str, Any]] | CallToolResult:
        """The arguments and the provider call this request asks for, or the error result that refuses it."""
        try:
            args = parse_args(model, ctx)
            return (args, *self._prepare(args, keyword_default))
        except (ArgumentError, LimitError) as exc:
            return error_result(str(exc))

    @staticmethod
    def _progress(ctx: Context) -> ProgressSender:
        async def report(progress: float, message: str | None) -> None:
            await ctx.report_progress(progress, None, message)

        return ProgressSender(report)

    async def complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Chat completion; give prompt or messages."""
        call = self._call(ctx, COMPLETE_MAX_TOKENS)
        if isinstance(call, CallToolResult):
            return call
        args, messages, kwargs = call
        progress = self._progress(ctx)
        delivery = Delivery()

        async def run(messages: list[Message], kwargs: dict[str, Any]) -> LLMResponse | CallToolResult:
            try:
                async with heartbeats(progress, self.heartbeat_s), self.limits.slot(kwargs.get("caller")):
                    delivery.asked = True
                    return await self.provider.acomplete(messages, **kwargs)
            except Busy as exc:
                return error_result(str(exc))
            except ProviderError as err:
                delivery.failed(err.error_type, err.billed)
                return error_result(failure_text(str(err), err.dump_id))

        return await self._serve(ctx, args, messages, kwargs, run, progress, COMPLETE_MAX_TOKENS, delivery)

    async def stream_complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Like complete; text streams as progress messages."""
        call = self._call(ctx, STREAM_MAX_TOKENS, StreamArgs)
        if isinstance(call, CallToolResult):
            return call
        args, messages, kwargs = call
        progress = self._progress(ctx)
        state = StreamState(reasoning=isinstance(args, StreamArgs) and args.include_reasoning)
        delivery = Delivery(text=state.produced)

        async def run(messages: list[Message], kwargs: dict[str, Any]) -> LLMResponse | CallToolResult:
            try:
                async with heartbeats(progress, self.heartbeat_s) as beating, self.limits.slot(kwargs.get("caller")):
                    delivery.asked = True
                    beating.cancel()  # the relay sends the heartbeats from here on
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(read_stream, self.provider.stream(messages, **kwargs), state)
                        await relay_progress(state, progress, self.heartbeat_s, self.pacer)
            except Busy as exc:
                return error_result(str(exc))
            if state.error is not None:
                delivery.failed(state.error.error_type, state.error.billed)
                return error_result(failure_text(state.error.error, state.error.dump_id))
            if state.finish is None:
                return error_result("internal error: the provider's stream ended without a result")
            return state.finish.response

        return await self._serve(ctx, args, messages, kwargs, run, progress, STREAM_MAX_TOKENS, delivery)

    async def _serve(
        self, ctx: Context, args: CompleteArgs, messages: list[Message], kwargs: dict[str, Any], run: Call,
        progress: ProgressSender, keyword_default: int, delivery: Delivery,
    ) -> CallToolResult:  # fmt: skip
        """The call `run` makes (metered when the server keeps a ledger, `delivery` saying what a call cut short
        owes), as a conversation when it keeps them."""
        who = caller(ctx.request_context)
        kwargs = {**kwargs, "caller": who}  # named in the call's failure dump
        if self.spend is None:
            return await self._converse(ctx, args, messages, kwargs, run, progress, keyword_default)
        meter = Meter(self.spend, who, keyword_default, self.limits.queue_timeout_s, delivery)
        result = None
        try:
            result = await self._converse(ctx, args, messages, kwargs, meter.wrap(run), progress, keyword_default)
        finally:
            result = await meter.finish(result)
        return result

    async def _converse(
        self, ctx: Context, args: CompleteArgs, messages: list[Message], kwargs: dict[str, Any], run: Call,
        progress: ProgressSender, keyword_default: int,
    ) -> CallToolResult:  # fmt: skip
        if self.conversations is None:
            if args.conversation_id is not None:
                return error_result("conversation_id: this server keeps no conversations (HIVE_MCP_CONVERSATIONS=off)")
            outcome = await run(messages, kwargs)
            if isinstance(outcome, CallToolResult):
                return outcome
            return completion_result(CompletionResult.from_response(outcome))
        return await self.conversations.run(
            ctx.request_context, args, messages, kwargs, run, lambda: heartbeats(progress, self.heartbeat_s),
            keyword_default,
        )  # fmt: skip

    async def list_failed_requests(self, ctx: Context) -> Annotated[CallToolResult, FailedRequestPage]:
        """Failed LLM calls, newest first; `uri` holds each request."""
        try:
            args = parse_args(ListFailedRequestsArgs, ctx)
            try:
                page = await list_page(caller_dumps(self.store, ctx.request_context, self.admins), args)
            except InvalidCursor:
                raise ArgumentError(
                    "invalid arguments: cursor: not a cursor from this listing; pass next_cursor back unchanged"
                ) from None
        except ArgumentError as exc:
            return error_result(str(exc))
        return json_result(page)

    async def list_models(self, ctx: Context) -> Annotated[CallToolResult, ModelList]:
        """Names `model` takes: deployments, health, context, prices, features."""
        try:
            parse_args(ListModelsArgs, ctx)
        except ArgumentError as exc:
            return error_result(str(exc))
        # In a worker thread: see ResourceHandlers.read_models (litellm's model information).
        spend = self.spend
        if spend is None:
            return json_result(await anyio.to_thread.run_sync(self.models.listing))
        who = owner_scope(caller(ctx.request_context), spend.admins)
        return json_result(await anyio.to_thread.run_sync(lambda: with_spend_today(self.models.listing(), spend, who)))

    async def dashboard(self, ctx: Context) -> CallToolResult:
        """Failed LLM requests: counts by category over time, the newest, or one dump (view=dump, id=...)."""
        raw = raw_arguments(ctx)
        spend = self.spend
        dumps = caller_dumps(self.store, ctx.request_context, self.admins)
        who = None if spend is None else owner_scope(caller(ctx.request_context), spend.admins)
        sources = Sources(
            models=models_source(dumps, self.models.listing),
            spend=usage_source(spend, who) if spend is not None else None,
        )
        return await dashboard_tool(dumps, raw if isinstance(raw, Mapping) else {}, sources=sources)


def build_tool(
    fn: Callable[..., Any],
    args_model: type[BaseModel],
    annotations: ToolAnnotations,
    models: ModelsView | None = None,
    meta: dict[str, Any] | None = None,
) -> MCPTool:
    """An MCPServer tool whose input schema is `args_model`'s (the function validates the raw arguments itself).

    With `models`, the `model` field's schema names the catalogue's callable names.
    """
    tool = MCPTool.from_function(fn, description=describe(fn.__doc__ or ""), annotations=annotations, meta=meta)
    tool.parameters = tool_schema(args_model.model_json_schema())
    if models is not None:
        fields = tool.parameters["properties"]
        fields["model"] = models.field_schema(fields["model"])
    output = tool.fn_metadata.output_schema
    if output is not None:
        tool.fn_metadata.output_schema = tool_schema(output, output=True)
    return tool


def tools(h: ToolHandlers) -> list[MCPTool]:
    """Every tool the server offers, in one place."""
    # readOnlyHint false and openWorldHint true are the spec's defaults: left unsaid, they cost no bytes.
    completion = ToolAnnotations(destructive_hint=False)
    return [
        build_tool(h.complete, CompleteArgs, completion.model_copy(update={"title": "LLM completion"}), h.models),
        build_tool(
            h.stream_complete, StreamArgs, completion.model_copy(update={"title": "Streaming completion"}), h.models
        ),
        build_tool(
            h.list_failed_requests,
            ListFailedRequestsArgs,
            ToolAnnotations(title="Failed requests", read_only_hint=True, open_world_hint=False),
            meta=TOOL_META,  # hosts that render MCP Apps show the failures in the dashboard
        ),
        build_tool(h.list_models, ListModelsArgs, ToolAnnotations(title="List models", read_only_hint=True, open_world_hint=False)),
        build_tool(
            h.dashboard,
            DashboardArgs,
            ToolAnnotations(title="Dashboard", read_only_hint=True, open_world_hint=False),
            meta=TOOL_META,
        ),
    ]
