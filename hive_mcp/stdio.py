"""MCP over stdio, our own transport in place of the SDK's: its session runs on streams read from stdin and
written to stdout here.

stdin: the SDK reads it with a blocking readline in an anyio worker thread,
which cannot be cancelled, so after Ctrl-C or SIGTERM the server would wait for
the client's next line or for EOF; and each request crosses from that thread to
the event loop. Here the event loop itself reads a private duplicate of fd 0
when it is a pipe or a socket (non-blocking, given back blocking at the end), so
a request costs one wake-up; anything else (a terminal, a file) is read by a
daemon thread with os.read (no buffered-IO lock to trip over at exit).

stdout: the SDK writes, then flushes, each message in anyio's worker pool: two
thread round trips (about 0.2 ms each on a 2-core machine) per response and per
progress notification. Here a message goes out at once, from the event loop, in
one non-blocking os.write to a private duplicate of fd 1 when nothing waits
ahead of it and the pipe has room (what asyncio's own transports do); whatever
does not fit is queued, and a daemon thread writes what has queued as the client
reads it.

While serving, fd 0 reads /dev/null and fd 1 points at stderr, so nothing else
in the process (or a child it starts) can read protocol bytes or write into the
protocol stream.

The session's streams (`_session_streams`): one task parses stdin's lines into
messages (`stdin_parse`, which answers those the session would not), and each
message the session sends is written by the task that sends it
(`StdoutMessages`), not handed to a writer task first, which would cost every
response and every progress notification two more turns of the event loop.
The rest mirrors `MCPServer.run_stdio_async`. On a platform without fcntl
(Windows) the SDK's own transport is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import signal
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, RequestId
from pydantic_core import PydanticSerializationError

from . import sdk_compat, stopping
from .number_tokens import restore_text
from .session_stream import SessionWriteStream, notification_json
from .stdin_parse import LineParser
from .text import compact_json, well_formed

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["StdoutLines", "run_stdio"]

logger = logging.getLogger("hive_mcp")

HIGH_WATER_BYTES = 4 * 1024 * 1024
"""Unwritten bytes past which `write` waits: a client that stopped reading must not grow our memory."""
LOW_WATER_BYTES = 1024 * 1024
DRAIN_TIMEOUT_S = 5.0
"""At exit, how long queued messages may take to reach a slow reader."""
SETTLE_AT_EOF_S = 5.0
"""At the end of input, the longest the server's work in hand may keep it from being told (see `_stdin_lines`)."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_stdio(server: Any, stop: Callable[[], Awaitable[object]] | None = None) -> None:
    """Serve `server` (an MCPServer) on stdin/stdout until EOF, Ctrl-C or SIGTERM; then await `stop()` (the
    app's: the tasks still running read failed, the conversation store closes), which an exit signal does not
    cut short."""
    if fcntl is None:
        stopping.serving()  # Ctrl-C reaches the SDK's transport as KeyboardInterrupt
        server.run(transport="stdio")
        return
    watch = threading.current_thread() is threading.main_thread()
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if watch else {}
    try:
        anyio.run(_serve_until_signal if watch else _serve, server, stop)
    finally:
        for sig, handler in before.items():  # the caller's handlers again, for the way out
            signal.signal(sig, handler)


async def _serve_until_signal(server: Any, stop: Callable[[], Awaitable[object]] | None) -> None:
    """`_serve`, stopped cleanly by the first SIGTERM or SIGINT (later ones change nothing).

    The event loop watches the signals itself (its wakeup fd): the kernel may hand a signal to
    any thread, and a handler installed with signal.signal alone runs only once the main thread
    wakes, which an idle loop, waiting in select for input that will not come, never does.
    """
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        stopping.serving()
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    logger.info("%s: stopping", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            await _serve(server, stop)
            tg.cancel_scope.cancel()


async def _serve(server: Any, stop: Callable[[], Awaitable[object]] | None) -> None:
    stdin_fd = _claim(0, lambda: os.open(os.devnull, os.O_RDONLY))
    stdout = StdoutLines(_claim(1, _stderr_or_null))
    try:
        async with _session_streams(_stdin_lines(stdin_fd), stdout) as (read_stream, write_stream):
            low = sdk_compat.lowlevel_server(server)  # as run_stdio_async does
            await low.run(read_stream, write_stream, low.create_initialization_options())
    finally:
        if stop is not None:
            with anyio.CancelScope(shield=True):
                await stop()
        stdout.close(DRAIN_TIMEOUT_S)


@asynccontextmanager
async def _session_streams(
    lines: AsyncIterator[str], stdout: StdoutLines
) -> AsyncIterator[tuple[MemoryObjectReceiveStream[SessionMessage | Exception], StdoutMessages]]:
    """The session's read stream (stdin's lines parsed, by one task) and its write stream (`StdoutMessages`).

    A line the session would not answer (`LineParser`) is answered by the reading task itself, before it
    reads the next line: the answers to bad lines go out in the order the lines came.
    """
    send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    out = StdoutMessages(stdout)
    parser = LineParser()

    async def read() -> None:
        async with send:
            async for line in lines:
                message = parser.parse(line)
                if isinstance(message, JSONRPCError):
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await out.send(SessionMessage(message))  # the client gone or the session over: nobody to tell
                else:
                    await send.send(message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        yield receive, out
        tg.cancel_scope.cancel()  # the session is over: input still to come has nobody to go to


def _claim(fd: int, open_diversion: Callable[[], int]) -> int:
    """A private duplicate of `fd` for the protocol; `fd` itself is pointed at what `open_diversion` opens.

    If `fd` cannot be duplicated, it is used in place.
    """
    assert fcntl is not None
    try:
        private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        return fd
    try:
        diversion = open_diversion()
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)
    except OSError:
        pass
    return private


def _stderr_or_null() -> int:
    try:
        return os.dup(2)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)


# ---------------------------------------------------------------------------
# stdin
# ---------------------------------------------------------------------------


def _pollable(fd: int) -> bool:
    """Whether `fd` is a pipe or a socket: the only kinds we make non-blocking. A terminal's or a file's open
    description is shared with whoever else holds it (the shell), and its blocking mode with it."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _blocking_again(fd: int) -> None:
    """Give a `_pollable` fd made non-blocking back blocking, as it was given to us (a closed one is left)."""
    with contextlib.suppress(OSError):
        os.set_blocking(fd, True)


async def _stdin_lines(fd: int) -> AsyncIterator[str]:
    """The lines of `fd`; cancelling the reader never waits for input.

    A pipe or a socket is read by the event loop itself (non-blocking, given back blocking at the end), so a
    request costs one wake-up of the loop; anything else is read by a daemon thread.

    At the end of input the SDK cancels every request still in flight, so the end is passed on only once the
    server has nothing left to do at once: `cat requests.jsonl | hive-mcp` gets its answers, while a request
    still waiting (on a model, say) is cancelled as the client left.
    """
    lines = _Lines()
    async with aclosing(_lines_from_loop(fd, lines) if _pollable(fd) else _lines_from_thread(fd, lines)) as source:
        async for line in source:
            yield line
    with anyio.move_on_after(SETTLE_AT_EOF_S):
        await anyio.wait_all_tasks_blocked()


async def _lines_from_loop(fd: int, lines: _Lines) -> AsyncIterator[str]:
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            except OSError:  # a read error is the end of input
                chunk = b""
            if not chunk:
                break
            for line in lines.feed(chunk):
                yield line
        for line in lines.end():
            yield line
    finally:
        _blocking_again(fd)


async def _lines_from_thread(fd: int, lines: _Lines) -> AsyncIterator[str]:
    send, receive = anyio.create_memory_object_stream[str](16)
    token = anyio.lowlevel.current_token()

    def pump() -> None:
        try:
            while chunk := _read_quietly(fd):
                for line in lines.feed(chunk):
                    anyio.from_thread.run(send.send, line, token=token)
            for line in lines.end():
                anyio.from_thread.run(send.send, line, token=token)
        except BaseException:  # noqa: BLE001 - the loop is gone or the reader stopped: nobody is listening
            return
        try:
            anyio.from_thread.run_sync(send.close, token=token)
        except BaseException:  # noqa: BLE001
            pass

    threading.Thread(target=pump, name="hive-mcp-stdin", daemon=True).start()
    async with receive:
        async for line in receive:
            yield line


class _Lines:
    """What is read from stdin, split into lines; blank lines are left out (JSON-RPC has nothing to answer)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the line so far, in pieces: a long line is joined once, not per read

    def feed(self, chunk: bytes) -> list[str]:
        first, *rest = chunk.split(b"\n")
        if not rest:
            self._pending.append(first)
            return []
        *lines, last = [b"".join((*self._pending, first)), *rest]
        self._pending = [last]
        return [_text(line + b"\n") for line in lines if line.strip()]

    def end(self) -> list[str]:
        """The last line, when input ends without a newline."""
        last, self._pending = b"".join(self._pending), []
        return [_text(last)] if last.strip() else []


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")


def _read_quietly(fd: int) -> bytes:
    """os.read, with a read error taken as end of input."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


# ---------------------------------------------------------------------------
# stdout
# ---------------------------------------------------------------------------


class StdoutMessages(SessionWriteStream):
    """The session's write stream: each message one JSON line, written to `StdoutLines` by the task that sends
    it. Lines go out whole and in the order they are sent. A client that closed its end is the transport gone
    (`anyio.BrokenResourceError`), as a closed memory stream would be."""

    def __init__(self, out: StdoutLines) -> None:
        super().__init__()
        self._out = out

    async def _deliver(self, item: SessionMessage) -> None:
        try:
            text = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        except PydanticSerializationError:
            # Text that is not valid Unicode (a lone surrogate, which a request can carry in: an unknown method
            # or a string id echoed back) cannot be encoded; it goes out as U+FFFD, as `notification_json` does.
            text = well_formed(compact_json(item.message.model_dump(mode="json", by_alias=True, exclude_unset=True)))
        await self._write(text)

    async def _notify(self, related_request_id: RequestId, method: str, params: dict[str, Any]) -> None:
        await self._write(notification_json(method, params))

    async def _write(self, text: str) -> None:
        text = restore_text(text)  # a progress token of 3.5 as the number again (`number_tokens`)
        try:
            await self._out.write(text + "\n")
        except OSError as exc:
            raise anyio.BrokenResourceError from exc


class StdoutLines:
    """Lines to stdout: written at once when they can be, else by a daemon thread.

    `write` writes the message itself when nothing is queued and the pipe takes it whole (a non-blocking
    os.write); else it queues what is left, and the thread joins whatever has queued and writes it in one
    os.write, so a burst of notifications to a slow reader costs one system call. Past `HIGH_WATER_BYTES`
    unwritten, `write` waits for the thread to catch up. A write error (the client closed the pipe) is raised
    by this `write` or the next.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._direct = _pollable(fd)
        if self._direct:
            os.set_blocking(fd, False)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._unwritten = 0
        self._caught_up = threading.Condition()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._pump, name="hive-mcp-stdout", daemon=True)
        self._thread.start()

    async def write(self, text: str) -> None:
        if self._error is not None:
            raise self._error
        data = text.encode("utf-8")
        with self._caught_up:
            if self._direct and not self._unwritten:  # nothing ahead of it: at once, if the pipe has room
                try:
                    data = data[os.write(self._fd, data) :]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._error = exc
                    raise
                if not data:
                    return
            self._unwritten += len(data)
            backlog = self._unwritten
        self._queue.put(data)
        if backlog > HIGH_WATER_BYTES:
            await anyio.to_thread.run_sync(self._wait_below, LOW_WATER_BYTES, abandon_on_cancel=True)

    def close(self, timeout: float) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._direct:
            _blocking_again(self._fd)

    def _wait_below(self, limit: int) -> None:
        with self._caught_up:
            self._caught_up.wait_for(lambda: self._unwritten <= limit or self._error is not None)

    def _pump(self) -> None:
        stop = False
        while not stop:
            batch: list[bytes] = []
            item = self._queue.get()
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            data = b"".join(batch)
            if data and self._error is None:
                try:
                    _write_all(self._fd, data)
                except OSError as exc:
                    logger.debug("stdout closed: %s", exc)
                    self._error = exc
            with self._caught_up:
                self._unwritten -= len(data)
                self._caught_up.notify_all()


def _write_all(fd: int, data: bytes) -> None:
    """All of `data` to the non-blocking `fd`, waiting (in this thread) for room as the reader takes it."""
    view = memoryview(data)
    room = select.poll()
    room.register(fd, select.POLLOUT)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            room.poll()
