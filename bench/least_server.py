"""The least server the SDK's client can stream from: what a chunk's latency is with no server framework at all.

It speaks only the JSON-RPC the benchmark's client sends (initialize, notifications, tools/list,
tools/call of `stream_complete`) and writes each of litellm's deltas as a progress notification the
moment litellm yields it: one `json.dumps`, one write. No SDK server, no session, no pacing, no
validation. Over HTTP it is a raw ASGI app on uvicorn (the server hive-mcp runs on); over stdio it reads
and writes the pipes itself. The streaming section shows its chunk latency beside the target: the part
of "litellm + 0.5 ms" that is the extra process, the socket or pipe, and the SDK's client.

Run as `python -m bench.least_server` (stdio) or `python -m bench.least_server --transport http --port N`,
with HIVE_MCP_MODEL, HIVE_MCP_API_BASE and HIVE_MCP_API_KEY set, as for the real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import litellm

Message = dict[str, Any]
Write = Callable[[bytes], Awaitable[None]]
"""Writes one JSON-RPC message, framed for the transport."""
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def upstream() -> dict[str, str]:
    """The upstream the floors call, from the environment the real server reads."""
    return {"api_base": os.environ["HIVE_MCP_API_BASE"], "api_key": os.environ["HIVE_MCP_API_KEY"]}


async def deltas(prompt: str, model: str | None = None) -> AsyncIterator[str]:
    """litellm's stream of `prompt`'s reply (the environment's model by default): each delta's text."""
    response = await litellm.acompletion(
        model=model or os.environ["HIVE_MCP_MODEL"], messages=[{"role": "user", "content": prompt}], stream=True,
        **upstream(),
    )  # fmt: skip
    async for chunk in response:
        if chunk.choices and (text := chunk.choices[0].delta.content):
            yield text


def answer(request: Message) -> Message:
    """The result of any request but tools/call."""
    method = request["method"]
    if method == "initialize":
        version = request["params"]["protocolVersion"]
        info = {"name": "least", "version": "0"}
        result = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info}
    elif method == "tools/list":
        result = {"tools": [{"name": "stream_complete", "inputSchema": {"type": "object"}}]}
    else:
        result = {}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


async def call(request: Message, write: Write) -> Message:
    """`stream_complete`: each delta written as a progress notification at once; the whole text the result."""
    params = request["params"]
    token = (params.get("_meta") or {}).get("progressToken")
    parts: list[str] = []
    arguments = params["arguments"]
    async for text in deltas(arguments["prompt"], arguments.get("model")):
        parts.append(text)
        if token is not None:
            progress = {"progressToken": token, "progress": len(parts), "message": text}
            await write(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress}).encode())
    content = "".join(parts)
    result = {"content": [{"type": "text", "text": content}], "structuredContent": {"content": content}}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


# -- stdio -----------------------------------------------------------------------------


async def serve_stdio() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.fileno()

    async def write(line: bytes) -> None:
        os.write(out, line + b"\n")  # a pipe takes a small line whole

    async def handle(request: Message) -> None:
        reply = await call(request, write) if request["method"] == "tools/call" else answer(request)
        await write(json.dumps(reply).encode())

    tasks: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        message = json.loads(line)
        if "id" in message and "method" in message:
            task = asyncio.create_task(handle(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


# -- streamable HTTP -------------------------------------------------------------------


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/healthz" or scope["method"] != "POST":
        status = 200 if scope["path"] == "/healthz" else 405
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        part = await receive()
        body += part.get("body", b"")
        if not part.get("more_body"):
            break
    request = json.loads(body)
    if "id" not in request:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    session = (b"mcp-session-id", b"least")
    if request["method"] != "tools/call":
        headers = [(b"content-type", b"application/json"), session]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(answer(request)).encode()})
        return
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), session]
    await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def event(data: bytes, more: bool = True) -> None:
        frame = b"event: message\ndata: " + data + b"\n\n"
        await send({"type": "http.response.body", "body": frame, "more_body": more})

    reply = await call(request, event)
    await event(json.dumps(reply).encode(), more=False)


if __name__ == "__main__":
    if "--port" in sys.argv:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[sys.argv.index("--port") + 1]), log_level="warning")
    else:
        asyncio.run(serve_stdio())
