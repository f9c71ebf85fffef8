"""A scripted OpenAI-compatible upstream on 127.0.0.1, for tests and benchmarks.

It speaks enough HTTP/1.1 for litellm's real client (keep-alive, Content-Length,
SSE streaming) and enough of the OpenAI chat-completions and Anthropic messages
APIs. Each test scripts the replies in order and reads back every request it got.
It runs its own event loop in a thread, so sync and async callers both work.
Benchmarks run it in a process of its own (bench/upstream_proc.py), choosing each
reply from the request with `reply_for`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []


@dataclass
class Reply:
    """One scripted reply. Build with the class methods."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    chunks: list[Any] = field(default_factory=list)
    delay: float = 0.0
    hold_after: int | None = None
    drop_after: int | None = None

    @classmethod
    def text(
        cls,
        content: str | None = "Hello!",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
        usage: dict[str, Any] | None = None,
        model: str = "gpt-4o-mini",
        delay: float = 0.0,
    ) -> Reply:
        """A non-streaming chat completion."""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.get("id", f"call_{i}"),
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c.get("arguments", "{}")},
                }
                for i, c in enumerate(tool_calls)
            ]
        body = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                }
            ],
            "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
        return cls("json", body=body, delay=delay)

    def held(self) -> Reply:
        """This reply, sent only once `Upstream.release()` is called after the request arrived (a stream: before
        its first chunk)."""
        return replace(self, hold_after=0)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted failure",
        *,
        code: str | None = None,
        err_type: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Reply:
        if body is None:
            body = {"error": {"message": message, "type": err_type or "error", "code": code}}
        return cls("json", status=status, headers=headers or {}, body=body)

    @classmethod
    def stream(
        cls,
        chunks: list[Any],
        *,
        finish_reason: str | None = "stop",
        usage: dict[str, Any] | None = None,
        delay: float = 0.0,
        hold_after: int | None = None,
        drop_after: int | None = None,
        model: str = "gpt-4o-mini",
        done: bool = True,
    ) -> Reply:
        """An SSE stream. A str chunk is a text delta, a dict is a raw `delta`,
        bytes are sent as they are (for malformed lines), and a callable is called
        for the delta's text as the chunk is sent (for timestamps). `hold_after=N`
        waits on `Upstream.release()` after N chunks; `drop_after=N` closes the connection."""
        events: list[Any] = []
        for c in chunks:
            if isinstance(c, bytes):
                events.append(c)
                continue
            if callable(c):
                events.append(lambda text=c: _chunk(model, {"content": text()}, None))
                continue
            delta = {"content": c} if isinstance(c, str) else c
            events.append(_chunk(model, delta, None))
        if finish_reason is not None:
            events.append(_chunk(model, {}, finish_reason))
        events.append(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )
        if done:
            events.append(b"data: [DONE]\n\n")
        return cls(
            "sse", chunks=events, delay=delay, hold_after=hold_after, drop_after=drop_after
        )

    @classmethod
    def anthropic(cls, content: str = "Hello from Claude") -> Reply:
        body = {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 3},
        }
        return cls("json", body=body)

    @classmethod
    def raw(cls, payload: bytes, *, status: int = 200, content_type: str = "application/json") -> Reply:
        """A body sent byte for byte (for replies that are not valid JSON)."""
        return cls("raw", status=status, body=payload, headers={"Content-Type": content_type})

    @classmethod
    def recording(cls, recording: dict[str, Any]) -> Reply:
        """Replay one recorded interaction (a file of ../shared/cassettes): its status, its
        recorded headers and its body byte for byte, whatever path the request named.
        Where the source kept no content type, it follows from the request: NDJSON for an
        Ollama native stream, SSE for any other successful stream, JSON otherwise."""
        headers = {str(k): str(v) for k, v in (recording.get("response_headers") or {}).items()}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        status = int(recording["status"])
        if content_type is None:
            if recording.get("stream") and status == 200:
                native_ollama = recording.get("provider") == "ollama" and recording.get("path", "").startswith("/api/")
                content_type = "application/x-ndjson" if native_ollama else "text/event-stream"
            else:
                content_type = "application/json"
        body = str(recording["response_text"]).encode("utf-8")
        return cls("recording", status=status, headers={"Content-Type": content_type, **headers}, body=body)

    @classmethod
    def drop(cls) -> Reply:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def hang(cls) -> Reply:
        """Never answer (until the client gives up or the server stops)."""
        return cls("hang")


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def tool_call_delta(index: int, *, id: str | None = None, name: str | None = None, args: str = "") -> dict:
    """A streamed tool-call fragment, as OpenAI sends it."""
    fn: dict[str, Any] = {"arguments": args}
    if name is not None:
        fn["name"] = name
    call: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    return {"tool_calls": [call]}


class Upstream:
    """The scripted server. Use as a context manager; `script()` queues replies."""

    def __init__(
        self, default: Reply | None = None, *, reply_for: Callable[[RecordedRequest], Reply | None] | None = None
    ) -> None:
        """`reply_for` is asked first for every request; where it returns None, the script and then `default` answer."""
        self._default = default or Reply.text("default reply")
        self._reply_for = reply_for
        self._script: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="upstream")
        self._server: asyncio.AbstractServer | None = None
        self._release: asyncio.Event | None = None
        self.port = 0
        self.open_connections = 0
        self.peak_connections = 0  # the most open at once
        self.request_seen = threading.Event()
        self.chunk_sent = threading.Event()
        self.client_gone = threading.Event()
        self.clients_gone = 0  # how many times the client hung up before the reply was complete

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Upstream:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    async def _start(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting -----------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def unscript(self) -> None:
        """Forget the replies scripted and not yet sent: a test sharing this upstream starts from none."""
        with self._lock:
            self._script.clear()

    def release(self) -> None:
        """Let a stream held by `hold_after` continue."""
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    # -- HTTP ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                self.request_seen.set()
                reply = (self._reply_for and self._reply_for(request)) or self._next_reply()
                keep_open = await self._respond(reply, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self._client_left()
        except asyncio.CancelledError:
            pass  # the upstream is stopping
        finally:
            self.open_connections -= 1
            writer.close()

    def _client_left(self) -> None:
        with self._lock:
            self.clients_gone += 1
        self.client_gone.set()

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        raw = b""
        if "content-length" in headers:
            raw = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                piece = await reader.readexactly(size + 2)
                if size == 0:
                    break
                raw += piece[:-2]
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return RecordedRequest(method, path, headers, body)

    async def _respond(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hold_after is not None and reply.kind != "sse":
            watch = asyncio.ensure_future(reader.read(1))  # completes when the client hangs up
            try:
                await self._released(watch)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)  # the reader is free for the next request
            if not watch.cancelled():
                self._client_left()
                return False
        if reply.kind == "drop":
            writer.transport.abort()
            return False
        if reply.kind == "hang":
            await reader.read()  # returns when the client closes
            self._client_left()
            return False
        if reply.kind in ("json", "raw", "recording"):
            payload = reply.body if reply.kind in ("raw", "recording") else json.dumps(reply.body).encode()
            headers = dict(reply.headers)
            content_type = headers.pop("Content-Type", "application/json")
            self._write_head(writer, reply.status, content_type, headers, len(payload))
            writer.write(payload)
            await writer.drain()
            return True
        return await self._stream(reply, reader, writer)

    async def _released(self, watch: asyncio.Future[bytes]) -> None:
        """Until `release()` (every reply held meanwhile goes on) or the client hangs up (`watch`)."""
        assert self._release is not None
        release = asyncio.ensure_future(self._release.wait())
        await asyncio.wait({release, watch}, return_when=asyncio.FIRST_COMPLETED)
        release.cancel()
        self._release.clear()

    async def _stream(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self._write_head(writer, 200, "text/event-stream", reply.headers, None)
        await writer.drain()
        watch = asyncio.ensure_future(reader.read(1))  # completes when the client hangs up
        try:
            for i, event in enumerate(reply.chunks):
                if reply.drop_after is not None and i == reply.drop_after:
                    writer.transport.abort()
                    return False
                if reply.hold_after is not None and i == reply.hold_after:
                    await self._released(watch)
                if watch.done():
                    self._client_left()
                    return False
                if callable(event):
                    event = event()
                data = event if isinstance(event, bytes) else f"data: {json.dumps(event)}\n\n".encode()
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                self.chunk_sent.set()
                if reply.delay and i + 1 < len(reply.chunks):
                    sleeper = asyncio.ensure_future(asyncio.sleep(reply.delay))
                    await asyncio.wait({sleeper, watch}, return_when=asyncio.FIRST_COMPLETED)
                    sleeper.cancel()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return False
        finally:
            watch.cancel()

    @staticmethod
    def _write_head(
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        headers: dict[str, str],
        length: int | None,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
        if length is None:
            lines += ["Transfer-Encoding: chunked", "Cache-Control: no-cache", "Connection: close"]
        else:
            lines.append(f"Content-Length: {length}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
