"""The tools, defined together in `tools()`.

Each tool publishes the compacted JSON schema of its own pydantic argument model
and validates the raw arguments itself (args.py), so a bad argument comes back as
one line naming the field. `complete` and `stream_complete` then build a `Call`
and run it down the call chain (`hive_mcp.calls`), with an observer that turns
its waits and its stream into progress notifications (when the request carries a
progress token); a refusal becomes an `isError` result naming what refused it,
and the outcome the result the client reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp_types import CallToolResult, ToolAnnotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool as MCPTool

from ..dashboard.app import TOOL_META, DashboardArgs, dashboard_tool
from ..dashboard.data import Sources
from ..dashboard.models import models_source
from ..dumps import DumpStore, InvalidCursor
from ..files import DEFAULT_FIT
from ..calls import Answers, Call, Chain, Outcome, Params, Thread, run
from ..observe.calls import CallWatch
from ..refusal import Refusal
from .args import CompleteArgs, ListFailedRequestsArgs, StreamArgs, parse_args, raw_arguments
from .model_list import ListModelsArgs, ModelList, ModelsView, with_spend_today
from .callers import caller
from ..defaults import DEFAULT_HEARTBEAT_S
from ..tokens import owner_scope
from .constants import MAX_REFUSAL_CHARS, PROGRESS_INTERVAL_S
from .errors import ArgumentError, error_result, safe_line
from .paging import ResultPages
from .relay import Heartbeats, Pacer, ProgressObserver, ProgressSender, progress_report
from .resources import caller_dumps, list_page
from .results import CompletionResult, FailedRequestPage, json_result, outcome_result
from .schema import build_tool
from .usage_view import usage_source

if TYPE_CHECKING:
    from ..spend import Spend

@dataclass
class ToolHandlers:
    """The tool functions of one server: the completion tools run the call chain, the others read the stores."""

    chain: Chain
    store: DumpStore
    models: ModelsView
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    progress_interval_s: float = PROGRESS_INTERVAL_S
    spend: Spend | None = None
    admins: frozenset[str] = frozenset()
    """Callers who see every caller's dumps (and, with `spend`, spend), as the stdio user does."""
    pages: ResultPages | None = None
    """Where an answer too big for one reply is kept, to be read in parts (None: answers go whole)."""
    pacer: Pacer = field(init=False)
    """Shared by every stream: how far behind the event loop is, one process's fact."""
    beats: Heartbeats = field(init=False, default_factory=Heartbeats)
    """Every waiting call's heartbeats, sent by one task while the server serves (`Heartbeats.run`)."""

    def __post_init__(self) -> None:
        self.pacer = Pacer(base_s=self.progress_interval_s)

    async def complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Chat completion; give prompt or messages."""
        return await self._run(ctx, CompleteArgs, stream=False)

    async def stream_complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Like complete; text streams as progress messages."""
        return await self._run(ctx, StreamArgs, stream=True)

    async def _run(self, ctx: Context, model: type[CompleteArgs], *, stream: bool) -> CallToolResult:
        """Parse, build the call, run the chain, map its outcome (or its refusal) to the tool's result; the
        operator's metrics count it however it ends, and its result tells hive-mcp's own share of its time."""
        who = caller(ctx.request_context)
        with CallWatch(
            "stream_complete" if stream else "complete", caller=who, request=ctx.request_context.request
        ) as watch:
            try:
                call = self.call(ctx, parse_args(model, ctx), stream=stream)
                outcome = await run(self.chain, call)
            except ArgumentError as exc:
                watch.finished("refused", error_category="arguments")
                return error_result(str(exc))
            except Refusal as exc:
                watch.finished("refused", error_category=exc.field)
                return error_result(safe_line(str(exc), MAX_REFUSAL_CHARS))
            told = watch.finished(**watched(call, outcome))
        result = outcome_result(outcome)
        if self.pages is not None and not result.is_error:
            answered = outcome.response if isinstance(outcome, Outcome) else None
            result = await self.pages.page(result, who, answered.model if answered is not None else None)
        if told:
            result.meta = {**(result.meta or {}), **told}
        return result

    def call(self, ctx: Context, args: CompleteArgs, *, stream: bool) -> Call:
        """The call valid `args` ask for, its progress going out as this request's notifications."""
        tools = args.provider_tools()
        params = Params(
            max_tokens=args.max_tokens, temperature=args.temperature, tools=tuple(tools) if tools else None,
            response_format=args.response_format, json_mode=args.json_mode, max_retries=args.max_retries,
            deadline_s=args.deadline_s, include_reasoning=isinstance(args, StreamArgs) and args.include_reasoning,
        )  # fmt: skip

        return Call(
            caller=caller(ctx.request_context), messages=tuple(args.provider_messages()), model=args.model,
            system=args.system or "", prompt=args.prompt, params=params, stream=stream,
            thread=Thread(args.conversation_id, args.fork) if args.conversation_id is not None else None,
            files=tuple(args.files or ()), fit=args.fit or DEFAULT_FIT,
            many=args.many(),
            observer=ProgressObserver(ProgressSender(progress_report(ctx)), self.heartbeat_s, self.pacer, self.beats),
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


def watched(call: Call, outcome: Outcome | Answers) -> dict[str, Any]:
    """How a call ended, as the operator's metrics count it (`CallWatch.finished`): at the group and deployment
    its latest attempt went to (the called model itself, unrouted). A set of models is one call: answered when
    any answered, its tokens and cost summed, its wait on the upstream the longest branch's."""
    if isinstance(outcome, Answers):
        members = [*outcome.answers, outcome.verdict]
        replies = [a.outcome.response for a in members if a and a.outcome and a.outcome.response]
        if not replies:
            return {"outcome": "error", "error_category": "models"}
        return {
            "outcome": "ok", "upstream_wait_s": max(r.upstream_wait_s for r in replies),
            **{k: sum(getattr(r, k) for r in replies) for k in
               ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cost_usd")},
        }  # fmt: skip
    where, ref = call.progress.answering, outcome.ref
    place = {
        "group": where.group or (ref.group if ref else None),
        "deployment": where.deployment or (ref.name if ref else None),
    }
    r, failure = outcome.response, outcome.failure
    if r is None:
        assert failure is not None
        return {"outcome": "error", "error_category": failure.error_type, "upstream_wait_s": failure.upstream_wait_s,
                **place}  # fmt: skip
    return {
        "outcome": "ok", "upstream_wait_s": r.upstream_wait_s, "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens, "cached_tokens": r.cached_tokens, "reasoning_tokens": r.reasoning_tokens,
        "cost_usd": r.cost_usd, **place,
    }  # fmt: skip


def tools(h: ToolHandlers) -> list[MCPTool]:
    """Every tool the server offers, in one place."""
    # readOnlyHint false and openWorldHint true are the spec's defaults: left unsaid, they cost no bytes.
    completion = ToolAnnotations(destructive_hint=False)
    model_field = h.models.field_schema
    return [
        build_tool(h.complete, CompleteArgs, completion.model_copy(update={"title": "LLM completion"}), model_field),
        build_tool(
            h.stream_complete, StreamArgs, completion.model_copy(update={"title": "Streaming completion"}), model_field
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
