"""Tasks on the wire, both generations, over one `TaskEngine`.

* **2026-07-28, the extension `io.modelcontextprotocol/tasks`** (SEP-2663): advertised under
  `capabilities.extensions`. For a client that declared it (in its session or in the request's `_meta`), a
  `tools/call` of a task tool the server decides to run long is answered by a flat `CreateTaskResult`
  (`resultType: "task"`, `taskId`, `status`, `createdAt`, `lastUpdatedAt`, `ttlMs`, `pollIntervalMs`).
  `tasks/get` answers the task and, once ended, inlines its `result` (completed) or its `error` (failed);
  a task whose tool asked for input (an `InputRequiredResult`) is `input_required` with its `inputRequests`,
  answered by `tasks/update` (`inputResponses`), after which the tool is called again with the answers;
  `tasks/cancel` and `tasks/update` answer an empty acknowledgement; `tasks/result` and `tasks/list` do not
  exist at that version (-32601). Without the extension, `tasks/*` is -32021 and a tool that requires a task
  is -32021 too; other task tools run as a plain call. An `Mcp-Name` header that disagrees with `taskId`
  is -32020.
* **2025-11-25, the experimental tasks utility**: the `tasks` server capability, `execution.taskSupport` on
  the task tools in `tools/list`, a `task` field on `tools/call` answered by `CreateTaskResult` (`task`),
  `tasks/get`, `tasks/result` (blocks until the task ends, then the tool's `CallToolResult` with the
  related-task `_meta`), `tasks/list` (newest first, cursors; one it did not hand out is -32602),
  `tasks/cancel` (-32602 for an ended task). A task whose tool result has `isError` reads `failed` at this
  version (its `tasks/result` is still that result); the 2026 extension reads it `completed`.

The SDK serves neither: the methods are low-level handlers that answer by the request's protocol version, the
2026 `tools/call` path is the extension's interceptor, and the 2025 `tools/call` path, whose answer the SDK
would sieve as a `CallToolResult`, is a server middleware (whose short-circuit answer the SDK sends as is; what
this leans on of the SDK is listed and checked in `sdk_compat`, Tasks).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from mcp_types import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    ProgressNotification,
    ProgressNotificationParams,
    RequestParams,
    TaskStatusNotification,
    TaskStatusNotificationParams,
)
from pydantic import ConfigDict

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..sdk_compat import lowlevel_server
from ..text import one_line
from .engine import TaskEngine, TaskNotFound, TasksUnavailable, TooManyTasks, UnknownCursor
from .records import CANCELLED, COMPLETED, FAILED, INPUT_REQUIRED, TaskRecord, iso, poll_interval_ms

__all__ = ["EXTENSION_ID", "TaskTool", "TasksExtension", "install_tasks"]

EXTENSION_ID = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
JOB_MARK = "io.github.hive-mcp/task-job"
_JOB = object()
"""`_meta[JOB_MARK]` of a task's own tool call (the job, not a call to make a task of): an object no client can
send, so no request can pass for a job."""
STATUS_LINE = 300
"""The longest `statusMessage` a tool error gives a 2025-11-25 task (its first line, shortened)."""
Decide = Callable[[CallToolRequestParams], Awaitable[bool]]
Caller = Callable[[ServerRequestContext[Any, Any]], str]
"""Who is calling (the MCP layer's `caller`): tasks are that caller's."""


async def _always(_params: CallToolRequestParams) -> bool:
    return True


@dataclass(frozen=True)
class TaskTool:
    """A tool that may run as a task: `required` (a 2026 client without the extension is refused) or
    `optional`; `decide(params)` says whether a 2026 call (of a client with the extension) becomes one."""

    support: Literal["optional", "required"] = "optional"
    decide: Decide = _always


class _TaskParams(RequestParams):
    model_config = ConfigDict(extra="allow")
    task_id: str


class _UpdateParams(_TaskParams):
    input_responses: dict[str, Any] | None = None


class _ListParams(RequestParams):
    model_config = ConfigDict(extra="allow")
    cursor: str | None = None


def is_modern(version: str) -> bool:
    return version in MODERN_PROTOCOL_VERSIONS


def _task_fields(task: TaskRecord, now: float, *, modern: bool) -> dict[str, Any]:
    status, message = (task.status, task.message) if modern else _legacy_status(task)
    out: dict[str, Any] = {"taskId": task.task_id, "status": status}
    if message:
        out["statusMessage"] = message
    out["createdAt"] = iso(task.created)
    out["lastUpdatedAt"] = iso(task.updated or task.created)
    out["ttlMs" if modern else "ttl"] = task.ttl_ms
    if not task.terminal:
        out["pollIntervalMs" if modern else "pollInterval"] = poll_interval_ms(task.created, now)
    return out


def _legacy_status(task: TaskRecord) -> tuple[str, str | None]:
    """The task's status and message as 2025-11-25 reads them: a tool result with `isError` is a failed task ("for
    tool calls specifically, this includes cases where the tool call result has isError set to true"), its message
    the error's first line. The 2026 extension reads the same end as completed (`failed` is for JSON-RPC errors
    only), so the store keeps it completed, with its result, and each generation says it its way."""
    result = task.result or {}
    if task.status != COMPLETED or result.get("isError") is not True:
        return task.status, task.message
    texts = [c.get("text") for c in result.get("content") or () if isinstance(c, dict) and c.get("type") == "text"]
    first = next((t.strip().splitlines()[0] for t in texts if isinstance(t, str) and t.strip()), "")
    return FAILED, one_line(first, STATUS_LINE) or "the tool reported an error"


def _not_found(exc: TaskNotFound) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=str(exc))


def _encode_cursor(task: TaskRecord) -> str:
    return base64.urlsafe_b64encode(f"{task.created!r}|{task.task_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    """The place a cursor names (creation time, task id); `UnknownCursor` for text no cursor decodes to. Whether
    the place is one of the caller's tasks is the engine's check (`TaskEngine.page`)."""
    try:
        created, _, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return float(created), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UnknownCursor() from None


class _Detached:
    """The request's session for a job that outlives its request: everything as the session has it, except
    progress. A 2025-11-25 task whose `tools/call` carried a progress token keeps sending progress on the
    session's own channel, tagged with the related-task `_meta`, while the client listens (the first failed
    send stops it); the 2026 extension allows no progress on tasks, and the request has been answered."""

    def __init__(self, session: Any, token: Any) -> None:
        self._session = session
        self._token = token
        self.task_id = ""  # known once the task is stored, before the job starts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self._token is None:
            return
        note = ProgressNotification(params=ProgressNotificationParams(
            progress_token=self._token, progress=progress, total=total, message=message,
            _meta={RELATED_TASK: {"taskId": self.task_id}},
        ))  # fmt: skip
        try:
            await self._session.send_notification(note)
        except Exception:  # noqa: BLE001 - the client stopped listening: the task goes on without progress
            self._token = None

    async def tell_end(self, task: TaskRecord) -> None:
        """`notifications/tasks/status` for the task's end, on the session's own channel."""
        fields = _task_fields(task, task.updated, modern=False)
        await self._session.send_notification(TaskStatusNotification(params=TaskStatusNotificationParams(**{
            "task_id": fields["taskId"], "status": fields["status"], "status_message": fields.get("statusMessage"),
            "created_at": fields["createdAt"], "last_updated_at": fields["lastUpdatedAt"], "ttl": task.ttl_ms,
        })))  # fmt: skip


def detached(
    ctx: ServerRequestContext[Any, Any], *, relay: bool = False
) -> tuple[ServerRequestContext[Any, Any], _Detached]:
    """`ctx` for a job run after its request has been answered (progress relayed when `relay`), and its session."""
    meta = dict(ctx.meta or {})
    token = meta.pop("progress_token", None) or meta.pop("progressToken", None)
    session = _Detached(ctx.session, token if relay else None)
    return replace(ctx, session=session, meta=meta or None), session  # type: ignore[arg-type]


def _declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities else None
    return bool(extensions) and EXTENSION_ID in extensions  # type: ignore[operator]


class TasksExtension(Extension):
    """The 2026-07-28 extension: advertised, and the interceptor that turns a `tools/call` into a task."""

    identifier = EXTENSION_ID

    def __init__(self, engine: TaskEngine, tools: Mapping[str, TaskTool], caller: Caller) -> None:
        self.engine = engine
        self.task_tools = dict(tools)
        self.caller = caller
        self.server: MCPServer | None = None
        """Set by `install_tasks`: a task's tool is called again through it with the client's answers."""

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        tool = self.task_tools.get(params.name)
        if tool is None or not is_modern(ctx.protocol_version) or (ctx.meta or {}).get(JOB_MARK) is _JOB:
            return await call_next(ctx)
        if tool.support == "required":
            require_client_extension(ctx, EXTENSION_ID)
        elif not _declares_extension(ctx):
            return await call_next(ctx)
        if not await tool.decide(params):
            return await call_next(ctx)
        job_ctx, _ = detached(ctx)
        job_ctx = replace(job_ctx, meta={**(job_ctx.meta or {}), JOB_MARK: _JOB})

        async def resume(answers: dict[str, Any], state: str | None) -> Any:
            entry = lowlevel_server(self.server).get_request_handler("tools/call") if self.server else None
            if entry is None:
                raise RuntimeError("tasks: install_tasks was not called for this server")
            again = params.model_copy(update={"input_responses": answers or None, "request_state": state})
            return await entry.handler(job_ctx, again)

        try:
            task = await _start(self.engine, self.caller(ctx), params.name, lambda: call_next(job_ctx), None,
                                resume=resume)  # fmt: skip
        except TasksUnavailable:  # no store to keep a task in: the call answers directly, as the spec allows
            return await call_next(ctx)
        return {"resultType": "task", **_task_fields(task, self.engine.clock(), modern=True)}


async def _start(
    engine: TaskEngine, caller: str, tool: str, job: Any, ttl_ms: int | None, on_end: Any = None, resume: Any = None
) -> TaskRecord:
    try:
        return await engine.start(caller, tool, job, ttl_ms=ttl_ms, on_end=on_end, resume=resume)
    except TooManyTasks as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None


class _Handlers:
    """`tasks/*` for both generations, answered by the request's protocol version."""

    def __init__(self, engine: TaskEngine, caller: Caller) -> None:
        self.engine = engine
        self.caller = caller

    async def _task(self, ctx: ServerRequestContext[Any, Any], task_id: str, *, modern: bool) -> TaskRecord:
        if modern:
            require_client_extension(ctx, EXTENSION_ID)
            headers = getattr(ctx.request, "headers", None)
            named = headers.get("mcp-name") if headers is not None else None
            if named is not None and named != task_id:
                raise MCPError(code=HEADER_MISMATCH, message="Mcp-Name header does not match params.taskId")
        try:
            return await self.engine.get(self.caller(ctx), task_id)
        except TaskNotFound as exc:
            raise _not_found(exc) from None

    async def get(self, ctx: ServerRequestContext[Any, Any], params: _TaskParams) -> dict[str, Any]:
        modern = is_modern(ctx.protocol_version)
        task = await self._task(ctx, params.task_id, modern=modern)
        out = _task_fields(task, self.engine.clock(), modern=modern)
        if modern and task.status == INPUT_REQUIRED:
            out["inputRequests"] = task.input_requests or {}
        if modern and task.status == COMPLETED and task.result is not None:
            out["result"] = task.result
        elif modern and task.status == FAILED:
            out["error"] = task.error or {"code": -32603, "message": task.message or "failed"}
        return out

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: _TaskParams) -> dict[str, Any]:
        modern = is_modern(ctx.protocol_version)
        task = await self._task(ctx, params.task_id, modern=modern)
        if task.terminal and not modern:
            ended, _ = _legacy_status(task)
            raise MCPError(code=INVALID_PARAMS, message=f"taskId: the task has already ended ({ended})")
        try:
            task = await self.engine.cancel(self.caller(ctx), params.task_id)
        except TaskNotFound as exc:
            raise _not_found(exc) from None
        return {} if modern else _task_fields(task, self.engine.clock(), modern=False)

    async def update(self, ctx: ServerRequestContext[Any, Any], params: _UpdateParams) -> dict[str, Any]:
        """2026 only: the client's answers to the input a task waits for, acknowledged empty."""
        if not is_modern(ctx.protocol_version):
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/update")
        await self._task(ctx, params.task_id, modern=True)
        try:
            await self.engine.update(self.caller(ctx), params.task_id, params.input_responses or {})
        except TaskNotFound as exc:
            raise _not_found(exc) from None
        return {}

    async def result(self, ctx: ServerRequestContext[Any, Any], params: _TaskParams) -> dict[str, Any]:
        """2025-11-25 only: wait for the task's end, then its result as the direct call would have answered."""
        if is_modern(ctx.protocol_version):
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/result")
        try:
            task = await self.engine.wait(self.caller(ctx), params.task_id)
        except TaskNotFound as exc:
            raise _not_found(exc) from None
        if task.status == COMPLETED and task.result is not None:
            meta = {**(task.result.get("_meta") or {}), RELATED_TASK: {"taskId": task.task_id}}
            legacy = {k: v for k, v in task.result.items() if k != "resultType"}  # a 2026 field
            return {**legacy, "_meta": meta}
        error = task.error or {"code": -32603, "message": task.message or task.status}
        if task.status == CANCELLED:
            error = {"code": -32603, "message": task.message or "cancelled"}
        raise MCPError(code=error["code"], message=error["message"], data={RELATED_TASK: {"taskId": task.task_id}})

    async def list(self, ctx: ServerRequestContext[Any, Any], params: _ListParams) -> dict[str, Any]:
        """2025-11-25 only: the caller's tasks, newest first, a page at a time."""
        if is_modern(ctx.protocol_version):
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/list")
        size = self.engine.list_page
        try:
            after = None if params.cursor is None else _decode_cursor(params.cursor)
            tasks = await self.engine.page(self.caller(ctx), after, size + 1)
        except UnknownCursor as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        now = self.engine.clock()
        out: dict[str, Any] = {"tasks": [_task_fields(t, now, modern=False) for t in tasks[:size]]}
        if len(tasks) > size:
            out["nextCursor"] = _encode_cursor(tasks[size - 1])
        return out


LEGACY_CAPABILITY = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}


def _legacy_middleware(engine: TaskEngine, tools: Mapping[str, TaskTool], server: MCPServer, caller: Caller) -> Any:
    """2025-11-25: the `tasks` capability in `initialize`, `execution.taskSupport` in `tools/list`, and a
    `tools/call` carrying `task` answered by `CreateTaskResult` with the call running as a task (-32601 for a tool
    without `execution.taskSupport`, which the spec reads as forbidden)."""
    low = lowlevel_server(server)

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        task_param = params.get("task")
        asks_task = ctx.method == "tools/call" and isinstance(task_param, Mapping) \
            and not is_modern(ctx.protocol_version)  # fmt: skip
        if asks_task and params.get("name") not in tools:  # no taskSupport is forbidden: the spec's -32601, not run
            named = one_line(repr(params.get("name")), 100)
            raise MCPError(code=METHOD_NOT_FOUND, message=f"tools/call: tool {named} does not run as a task (no "
                           "execution.taskSupport); call it without `task`")  # fmt: skip
        if asks_task:
            entry = low.get_request_handler("tools/call")
            assert entry is not None
            typed = CallToolRequestParams.model_validate({k: v for k, v in params.items() if k != "task"})
            job_ctx, session = detached(ctx, relay=True)
            ttl = task_param.get("ttl")
            task = await _start(engine, caller(ctx), typed.name, lambda: entry.handler(job_ctx, typed),
                                ttl if isinstance(ttl, int) else None, session.tell_end)  # fmt: skip
            session.task_id = task.task_id
            return {"task": _task_fields(task, engine.clock(), modern=False)}
        result = await call_next(ctx)
        if is_modern(ctx.protocol_version) or not isinstance(result, dict):
            return result
        if ctx.method == "initialize" and isinstance(result.get("capabilities"), dict):
            result["capabilities"] = {**result["capabilities"], "tasks": LEGACY_CAPABILITY}
        elif ctx.method == "tools/list" and isinstance(result.get("tools"), list):
            for tool in result["tools"]:
                if isinstance(tool, dict) and tool.get("name") in tools:
                    tool["execution"] = {"taskSupport": tools[tool["name"]].support}
        return result

    return middleware


def install_tasks(server: MCPServer, extension: TasksExtension) -> None:
    """Serve tasks of both generations on `server`, for the extension's tools. The extension itself is passed
    to the server's constructor (`MCPServer(extensions=[TasksExtension(engine, tools, caller)])`); this adds
    the rest."""
    engine, tools, caller = extension.engine, extension.task_tools, extension.caller
    extension.server = server
    low = lowlevel_server(server)
    handlers = _Handlers(engine, caller)
    low.add_request_handler("tasks/get", _TaskParams, handlers.get)
    low.add_request_handler("tasks/cancel", _TaskParams, handlers.cancel)
    low.add_request_handler("tasks/update", _UpdateParams, handlers.update)
    low.add_request_handler("tasks/result", _TaskParams, handlers.result)
    low.add_request_handler("tasks/list", _ListParams, handlers.list)
    server.middleware.append(_legacy_middleware(engine, tools, server, caller))
