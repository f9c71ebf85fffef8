"""The task engine: a job (an async callable producing a tool's `CallToolResult`) run detached from the request
that started it, its state and result kept in the task store for any instance to answer for.

* A job runs as a task of the server's event loop, not of its request: the client may disconnect, the request
  may end, and the job goes on to its end and stores it.
* The instance that runs a job holds a lease on it and renews it every `tick_s`; a task whose lease ran out
  (its instance died) reads `failed`, with one line saying so, never `working` forever. A store that was away
  kept every instance from renewing: once it is back, a lease is not taken for dead until its instance has had
  a full lease to renew it (`TaskStore.since_back`), so an outage longer than the lease fails no live task.
* A job that ends while the store is away keeps its end in this instance (`get`, `wait` and `page` answer from
  it, the lease goes on being renewed) and stores it at the first tick the store answers, until its TTL has
  passed. An end the store refuses (the task was taken for dead meanwhile) is said in one line.
* `cancel` on any instance marks the task and, when the engine has a way to tell the others (`tell_others`: the
  change bus over Redis), says so at once; the instance running it hears it (`cancel_here`), or else reads the
  mark at its next lease renewal (at most `tick_s` later: the way that needs nothing but the store), or is
  itself the one asked; it cancels the job (the upstream request closes; what was
  produced is charged as for any call cut short) and stores `cancelled`, also when the job fails as it winds down
  (its client gone with a stopping instance, say). A job that already has its end (a
  result or a failure) is not cancelled: it stores and tells that end, and the cancel answers it.
* When the instance stops (`stop`: SIGTERM, the end of a stdio session), its jobs get the grace period its calls
  get; one still running at its end is stopped and reads `failed` at once (`INSTANCE_GONE`), as it would once its
  lease had run out. The stop's one line counts the tasks that read failed so, not the jobs it cut: one cut in its
  last step may still end with its result.
* A task is its caller's: another caller's id reads as not found (`owner_scope`: admins and the stdio user
  see every caller's by id); `page` lists the caller's own, newest first. At most `per_caller` unfinished at
  once, counted in the store so the cap holds across instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from secrets import token_hex
from typing import Any, Protocol, TypeVar

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, CallToolResult, InputRequiredResult

from ..observe import metrics
from ..jsonrpc import SHUTDOWN_ERROR_CODE
from ..defaults import TASK_LEASE_S, TASK_MAX_TTL_S, TASK_TTL_S, TASKS_PER_CALLER
from ..tokens import owner_scope
from .records import CANCELLED, COMPLETED, FAILED, INPUT_REQUIRED, MIN_TTL_MS, TaskRecord, poll_interval_ms

__all__ = [
    "InstanceStopping", "Job", "TaskEngine", "TaskNotFound", "TaskStore", "TasksUnavailable", "TooManyTasks",
    "UnknownCursor",
]  # fmt: skip

logger = logging.getLogger("hive_mcp.tasks")
T = TypeVar("T")

Job = Callable[[], Awaitable[CallToolResult | InputRequiredResult]]
Resume = Callable[[dict[str, Any], str | None], Awaitable[CallToolResult | InputRequiredResult]]
"""The job again with the client's answers to the input its tool asked for, and the tool's request state."""
OnEnd = Callable[[TaskRecord], Awaitable[None]]

INSTANCE_GONE = "the hive-mcp instance running this task stopped before it finished"
CANCELLED_TEXT = "cancelled at the client's request"


class TaskNotFound(LookupError):
    """No task by that id for this caller (unknown, expired, or another caller's)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"taskId: no task {task_id!r} (unknown, expired, or not yours)")


class UnknownCursor(ValueError):
    """A `tasks/list` cursor this server did not hand out: it names none of the caller's tasks as stored."""

    def __init__(self) -> None:
        super().__init__("cursor: not a cursor tasks/list gave you (or the task it points at has expired); pass "
                         "nextCursor back unchanged, or list from the start")  # fmt: skip


class TooManyTasks(RuntimeError):
    """The caller has as many unfinished tasks as it may."""

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"too many tasks: {cap} of yours are unfinished (HIVE_MCP_TASKS_PER_CALLER); wait for one to end or "
            "cancel one"
        )


class TasksUnavailable(MCPError):
    """The task store did not answer (Redis away, the SQLite file unwritable): one line, no detail of the store;
    the client reads it as an internal error."""

    def __init__(self, operation: str) -> None:
        super().__init__(INTERNAL_ERROR, f"tasks are unavailable: the state store did not answer ({operation}); "
                         "try again shortly")  # fmt: skip


class InstanceStopping(TasksUnavailable):
    """This instance has begun to stop: a task asked for now would run where no drain waits for it. A 2025-11-25
    client, which asked for the task, reads the error a call cut off by shutdown reads; a 2026-07-28 call, whose
    task the server chose, answers directly (`TasksUnavailable`) within the calls' grace period."""

    def __init__(self) -> None:
        MCPError.__init__(self, SHUTDOWN_ERROR_CODE, "hive-mcp is shutting down: the task was not started; send "
                          "the call again")  # fmt: skip


class TaskStore(Protocol):
    async def create(self, task: TaskRecord, cap: int, now: float) -> bool: ...
    async def get(self, task_id: str, now: float) -> TaskRecord | None: ...
    async def page(self, owner: str, after: tuple[float, str] | None, limit: int, now: float) -> list[TaskRecord]: ...
    async def finish(self, task: TaskRecord) -> bool: ...
    async def renew(self, instance: str, task_ids: list[str], lease: float, now: float) -> set[str]: ...
    async def request_cancel(self, task_id: str) -> None: ...
    async def ask_input(self, task_id: str, requests: dict[str, Any], state: str | None, now: float) -> bool: ...
    async def answer(self, task_id: str, responses: dict[str, Any], now: float) -> TaskRecord | None: ...
    async def aclose(self) -> None: ...
    def since_back(self) -> float:
        """Seconds since the store last answered again after failing in this process (0 while it fails,
        infinite if it never did)."""
        ...


@dataclass
class _Running:
    job: asyncio.Task[None]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    stopped: bool = False
    """Cancelled because the instance stops, not at the client's request: the task reads failed."""
    gone: bool = False
    """The job ended cut short by the stop: its task reads failed (`INSTANCE_GONE`)."""
    ending: bool = False
    """The job has its end (a result or a failure) and is storing and telling it: nothing cancels it now, so that
    end is the task's, a cancel that comes now waits for it and answers it."""


class TaskEngine:
    """Tasks of one process on `store`. `admins` see every caller's task by id, as `owner_scope` says."""

    def __init__(
        self,
        store: TaskStore,
        *,
        per_caller: int = TASKS_PER_CALLER,
        ttl_s: float = TASK_TTL_S,
        max_ttl_s: float = TASK_MAX_TTL_S,
        lease_s: float = TASK_LEASE_S,
        admins: Iterable[str] = (),
        list_page: int = 50,
        tick_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if per_caller < 1 or ttl_s <= 0 or max_ttl_s < ttl_s or lease_s <= 0:
            raise ValueError("tasks: per_caller >= 1, 0 < ttl_s <= max_ttl_s and lease_s > 0")
        self.store = store
        self.per_caller = per_caller
        self.ttl_ms = int(ttl_s * 1000)
        self.max_ttl_ms = int(max_ttl_s * 1000)
        self.lease_s = lease_s
        self.tick_s = min(lease_s / 3, 0.5) if tick_s is None else tick_s
        """How often leases are renewed and cancel marks read: a cancel on another instance lands within it."""
        self.admins = frozenset(admins)
        self.list_page = list_page
        """How many tasks one `tasks/list` page holds."""
        self.clock = clock
        self.instance = token_hex(8)
        self.tell_others: Callable[[str], Awaitable[None]] | None = None
        """Tells the other instances a task was asked to cancel (its id); None: they read the mark at renewal."""
        self._running: dict[str, _Running] = {}
        self._unstored: dict[str, TaskRecord] = {}
        """Ends of jobs of this instance the store did not take (it was away), by task id, until it does."""
        self._storing = asyncio.Lock()  # one pass over `_unstored` at a time: an end is stored once
        self._renewer: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._cut: list[_Running] = []
        """The jobs the end of the grace period cut (`expire`)."""

    # -- starting ------------------------------------------------------------

    async def start(
        self, caller: str, tool: str, job: Job, *, ttl_ms: int | None = None, on_end: OnEnd | None = None,
        resume: Resume | None = None,
    ) -> TaskRecord:
        """Store a new task of `caller` running `job` (for `tool`), start it, and return it as stored: a
        `get` for its id answers from now on. `ttl_ms` is what the client asked for (raised to `MIN_TTL_MS`,
        capped by the server's maximum; None: the default), counted from the task's end: a task never expires while
        it works (`TaskRecord.expires`); `on_end(task)` is awaited once its end is stored, or kept here while the store
        is away (a status notification).
        A job whose tool asks the client for input (an `InputRequiredResult`) leaves the task `input_required`
        until `update` has brought every answer, then `resume(answers, request_state)` goes on (without
        `resume`, such a task fails). The job starts after this returns. Raises `TooManyTasks`, and
        `InstanceStopping` once `stop` has begun."""
        if self._stopping is not None:
            raise InstanceStopping()
        now = self.clock()
        ttl = self.ttl_ms if ttl_ms is None else max(MIN_TTL_MS, min(int(ttl_ms), self.max_ttl_ms))
        task = TaskRecord(
            task_id=token_hex(16), owner=caller, tool=tool, created=now, updated=now, ttl_ms=ttl,
            instance=self.instance, lease=now + self.lease_s,
        )  # fmt: skip
        if not await self._ask(self.store.create(task, self.per_caller, now), "create a task"):
            raise TooManyTasks(self.per_caller)
        if self._stopping is not None and self._stopping.done():  # the whole stop ran while the task was stored
            await self._ask(self.store.finish(_gone(task, self.clock())), "end a task")
            raise InstanceStopping()
        loop = asyncio.get_running_loop()
        running = _Running(loop.create_task(self._run(task, job, on_end, resume), name=f"hive-task-{tool}"))
        self._running[task.task_id] = running
        metrics.tasks_open(len(self._running))
        running.job.add_done_callback(lambda _: self._ended(task.task_id))
        if self._renewer is None or self._renewer.done():
            self._renewer = loop.create_task(self._renew(), name="hive-task-leases")
        return task

    def _ended(self, task_id: str) -> None:
        running = self._running.pop(task_id, None)
        metrics.tasks_open(len(self._running))
        if running is not None:
            running.done.set()

    async def _run(self, task: TaskRecord, job: Job, on_end: OnEnd | None, resume: Resume | None) -> None:
        try:
            result = await job()
            while isinstance(result, InputRequiredResult):
                if resume is None:
                    raise RuntimeError("the tool asked the client for input, which this task cannot relay")
                answers = await self._input(task, result)
                result = await resume(answers, result.request_state)
        except asyncio.CancelledError:
            ended = self._cut_short(task)
        except Exception as exc:  # noqa: BLE001 - a job that raised is a failed task, named in one line
            if (running := self._running.get(task.task_id)) is not None and running.cancelled:
                ended = self._cut_short(task)  # it failed winding down from its cancel: the cancel is its end
            else:
                logger.warning("task %s (%s) failed: %s", task.task_id, task.tool, type(exc).__name__)
                ended = task.ended(FAILED, self.clock(), message="internal error", error=_error(exc))
        else:
            ended = task.ended(COMPLETED, self.clock(), result=result.model_dump(by_alias=True, mode="json",
                                                                                exclude_none=True))  # fmt: skip
        if (running := self._running.get(task.task_id)) is not None:
            # Set in the step the job's end came in (no await since): a cancel after it leaves the job alone.
            # An anyio shield would not do: `_cancel_local` cancels the asyncio task itself, which no scope stops.
            running.ending = True
        try:
            stored = await self.store.finish(ended)
        except Exception as exc:  # noqa: BLE001 - the store is away: the end is kept here until it answers
            logger.warning("task %s ended (%s) but the store did not take its end (%s): this instance keeps it and "
                           "stores it once the store answers", task.task_id, ended.status, type(exc).__name__)
            self._unstored[task.task_id] = ended  # before the job's done-callback: the renewal goes on
        else:
            if not stored and not await self._was_ours(ended):
                return
        if on_end is not None:
            try:
                await on_end(ended)
            except Exception as exc:  # noqa: BLE001 - a client gone away is not the task's failure
                logger.debug("task %s: telling of its end failed: %s", task.task_id, exc)

    def _cut_short(self, task: TaskRecord) -> TaskRecord:
        """The end of a job that stopped at its cancel: gone when the stop cut it, else cancelled as the client
        asked."""
        running = self._running.get(task.task_id)
        if running is not None and running.stopped:
            running.gone = True
            return _gone(task, self.clock())
        return task.ended(CANCELLED, self.clock(), message=CANCELLED_TEXT)

    async def _input(self, task: TaskRecord, asked: InputRequiredResult) -> dict[str, Any]:
        """Leave the task `input_required` with the tool's requests until every one is answered; the answers."""
        requests = {k: v.model_dump(by_alias=True, mode="json", exclude_none=True)
                    for k, v in (asked.input_requests or {}).items()}  # fmt: skip
        await self._ask(self.store.ask_input(task.task_id, requests, asked.request_state, self.clock()), "ask input")
        running = self._running.get(task.task_id)
        while True:
            if running is not None:
                running.answered.clear()
            now = self.clock()
            stored = await self._ask(self.store.get(task.task_id, now), "read a task")
            if stored is None:
                raise RuntimeError("the task expired while it waited for input")
            if stored.status != INPUT_REQUIRED:
                return dict(stored.input_responses or {})
            if running is None:
                await asyncio.sleep(self.tick_s)
                continue
            with contextlib.suppress(TimeoutError):  # answers given on another instance are read every tick
                await asyncio.wait_for(running.answered.wait(), self.tick_s)

    async def _was_ours(self, ended: TaskRecord) -> bool:
        """`finish` refused `ended`: whether the store holds that very end (a finish sent again after one that
        landed though its answer was lost); if not, the task ended otherwise and this end is said and dropped."""
        with contextlib.suppress(Exception):
            held = await self.store.get(ended.task_id, self.clock())
            if held is not None and (held.status, held.updated) == (ended.status, ended.updated):
                return True
        logger.warning("task %s ended (%s) but the store refused its end: the task had ended already (its lease was "
                       "taken for run out) or expired; this end is dropped", ended.task_id, ended.status)
        return False

    async def _store_ends(self) -> None:
        """Store the ends kept while the store was away, in turn, until one fails (the store is still away: the
        rest wait for the next tick); an end whose TTL has passed is dropped (the task expired meanwhile)."""
        async with self._storing:
            for task_id, ended in list(self._unstored.items()):
                if ended.expires <= self.clock():
                    del self._unstored[task_id]
                    logger.warning("task %s: its end (%s) was never stored and its TTL has passed: dropped", task_id,
                                   ended.status)  # fmt: skip
                    continue
                try:
                    stored = await self.store.finish(ended)
                except Exception as exc:  # noqa: BLE001 - still away: the next tick tries again
                    logger.debug("task ends not stored yet: %s", type(exc).__name__)
                    return
                if not stored:
                    await self._was_ours(ended)
                del self._unstored[task_id]

    async def _renew(self) -> None:
        while self._running or self._unstored:
            await asyncio.sleep(self.tick_s)
            if self._unstored:
                await self._store_ends()
            ids = list(dict.fromkeys([*self._running, *self._unstored]))
            try:
                now = self.clock()
                marked = await self.store.renew(self.instance, ids, now + self.lease_s, now)
            except Exception as exc:  # noqa: BLE001 - try again next tick; a long outage lets the lease run out
                logger.debug("task leases not renewed: %s", exc)
                continue
            for task_id in marked:
                self._cancel_local(task_id)

    def _cancel_local(self, task_id: str) -> bool:
        """Cancel the job of `task_id` if this instance runs it and it has no end yet; whether it runs here (its
        end, whichever it is, is then `running.done` away)."""
        running = self._running.get(task_id)
        if running is None:
            return False
        if not running.cancelled and not running.ending:
            running.cancelled = True
            running.job.cancel()
        return True

    @staticmethod
    async def _ask(command: Awaitable[T], operation: str) -> T:
        """`command`'s answer; a store that fails is `TasksUnavailable` (the store warns once per outage)."""
        try:
            return await command
        except Exception as exc:  # noqa: BLE001 - Redis or SQLite away: one line for the client
            logger.debug("task store: %s failed: %s", operation, type(exc).__name__)
            raise TasksUnavailable(operation) from None

    # -- reading -------------------------------------------------------------

    async def get(self, caller: str, task_id: str) -> TaskRecord:
        """The task, as it stands. Raises `TaskNotFound` (also for another caller's)."""
        now = self.clock()
        task = self._unstored.get(task_id) or await self._ask(self.store.get(task_id, now), "read a task")
        scope = owner_scope(caller, self.admins)
        if task is None or (scope is not None and task.owner != scope):
            raise TaskNotFound(task_id)
        if not task.terminal and task.task_id not in self._running and self._lease_ran_out(task, now):
            await self._ask(self.store.finish(_gone(task, now)), "end a task")
            return await self.get(caller, task_id)
        return task

    def _lease_ran_out(self, task: TaskRecord, now: float) -> bool:
        """Whether `task`'s instance is taken for dead: its lease ran out, and the store has been answering for a
        full lease (no instance could renew while it was away; a live one has renewed since)."""
        return task.lease < now and self.store.since_back() >= self.lease_s

    async def wait(self, caller: str, task_id: str) -> TaskRecord:
        """The task once it has ended (a job of this instance is awaited; another's is polled)."""
        while True:
            task = await self.get(caller, task_id)
            if task.terminal:
                return task
            running = self._running.get(task_id)
            if running is not None:
                await running.done.wait()
            else:
                await asyncio.sleep(min(poll_interval_ms(task.created, self.clock()) / 1000, self.tick_s))

    async def page(self, caller: str, after: tuple[float, str] | None, limit: int) -> list[TaskRecord]:
        """`caller`'s own tasks, newest first, after `after` (the last one of the previous page). Raises
        `UnknownCursor` unless `after` is one of `caller`'s tasks as the store holds it (its creation time and id),
        as every page handed out names: checked in the store, so a cursor from one instance pages on another, and
        a forged one (past every task, before every one) is refused rather than read as a place to start."""
        now = self.clock()
        if after is not None:
            anchor = await self._ask(self.store.get(after[1], now), "read a task")
            if anchor is None or anchor.owner != caller or anchor.created != after[0]:
                raise UnknownCursor()
        found = await self._ask(self.store.page(caller, after, limit, now), "list tasks")
        return [self._unstored.get(t.task_id, t) for t in found]

    # -- cancelling ----------------------------------------------------------

    async def cancel(self, caller: str, task_id: str) -> TaskRecord:
        """Ask the task to stop (idempotent: an ended task is returned as it is). Returns it as it stands."""
        task = await self.get(caller, task_id)
        if task.terminal:
            return task
        await self._ask(self.store.request_cancel(task_id), "cancel a task")
        running = self._running.get(task_id)
        if self._cancel_local(task_id) and running is not None:
            await running.done.wait()
        elif self.tell_others is not None:
            await self.tell_others(task_id)
        return await self.get(caller, task_id)

    async def update(self, caller: str, task_id: str, responses: dict[str, Any]) -> TaskRecord:
        """The client's answers to some or all of the input a task waits for (others, and answers to a task that
        waits for none, are ignored). Returns the task as it stands."""
        await self.get(caller, task_id)
        task = await self._ask(self.store.answer(task_id, responses, self.clock()), "answer a task's input")
        if task is None:
            raise TaskNotFound(task_id)
        running = self._running.get(task_id)
        if running is not None:
            running.answered.set()
        return task

    def cancel_here(self, task_id: str) -> None:
        """Another instance was asked to cancel `task_id`: cancel its job if this instance runs it."""
        self._cancel_local(task_id)

    def running(self) -> list[str]:
        """The ids of the jobs this instance runs now."""
        return list(self._running)

    async def stop(self, grace_s: float) -> None:
        """This instance stops: its jobs get `grace_s` to end, then those still running are stopped and read
        failed (`INSTANCE_GONE`); then the lease renewal ends. A call while a stop runs waits for that one, so
        the end of serving never cuts a grace period short."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace_s))
        await asyncio.shield(self._stopping)

    async def aclose(self) -> None:
        """`stop` with no grace period (or the end of the one under way)."""
        await self.stop(0.0)

    def expire(self) -> None:
        """The grace period is over: each job still running with no end yet is cut (it reads failed, `INSTANCE_GONE`,
        unless it still ends with its result). A job the client cancelled, or one storing its end, has its end
        already: it is waited for, not cut."""
        for task_id, running in list(self._running.items()):
            if not running.cancelled and not running.ending:
                running.stopped = True
                self._cut.append(running)
                self._cancel_local(task_id)

    async def _stop(self, grace_s: float) -> None:
        if self._running and grace_s > 0:
            logger.info("shutting down: %d task(s) running get up to %g s to finish", len(self._running), grace_s)
            await asyncio.wait([r.job for r in self._running.values()], timeout=grace_s)
        self.expire()
        await asyncio.gather(*(r.done.wait() for r in self._running.values()))
        # Counted by their ends: a job cut in its last step may still end with its result.
        if gone := sum(running.gone for running in self._cut):
            logger.warning("%d task(s) stopped unfinished: they read failed", gone)
        await self._store_ends()  # a last try for the ends the store did not take
        if self._unstored:
            logger.warning("%d task(s) ended but the store did not take their ends before this instance stopped: "
                           "they read failed once their leases run out", len(self._unstored))
        if self._renewer is not None:
            self._renewer.cancel()


def _gone(task: TaskRecord, now: float) -> TaskRecord:
    """`task` ended because the instance running it stopped, or died (its lease ran out)."""
    return task.ended(FAILED, now, message=INSTANCE_GONE, error={"code": INTERNAL_ERROR, "message": INSTANCE_GONE})


def _error(exc: BaseException) -> dict[str, Any]:
    """A JSON-RPC error object for a job that raised: its class and first line, never a traceback (an
    `MCPError` keeps its own code and message)."""
    from ..redact import redact_text

    if isinstance(exc, MCPError):
        return {"code": exc.code, "message": redact_text(exc.message.splitlines()[0] if exc.message else "", ())}

    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"code": INTERNAL_ERROR, "message": redact_text(f"{type(exc).__name__}: {first}".rstrip(": "), ())}
