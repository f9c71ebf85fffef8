"""The stdio transport's ends. stdout: order, batching, backpressure, a closed pipe, draining at exit.
stdin: read by the loop from a pipe, by a thread from a file; blocking mode given back. The session's
streams: stdin's lines parsed into messages, each message it sends written by the sending task.

Real pipes, real threads; waits are on events or on all tasks being blocked, never on sleeps.
(The whole transport is exercised end to end in tests/test_e2e.py, the process itself in tests/test_e2e_process.py;
here, the process's answers to lines its parser refuses.)
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCRequest
from pydantic import ValidationError

from hive_mcp import stdio
from hive_mcp.stdio import StdoutLines
from harness.processes import INITIALIZE, ask_stdio, child_env


def read_all(fd: int, into: bytearray, done: threading.Event) -> None:
    while chunk := os.read(fd, 65536):
        into.extend(chunk)
    done.set()


async def test_lines_arrive_whole_and_in_order() -> None:
    r, w = os.pipe()
    got, done = bytearray(), threading.Event()
    threading.Thread(target=read_all, args=(r, got, done), daemon=True).start()
    out = StdoutLines(w)
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 300)}"}}\n' for i in range(2000)]
    for line in lines:
        await out.write(line)
    out.close(5.0)
    os.close(w)
    assert await anyio.to_thread.run_sync(done.wait, 5.0)
    os.close(r)
    assert got.decode() == "".join(lines)


async def test_a_message_with_nothing_ahead_of_it_is_in_the_pipe_when_write_returns() -> None:
    """No thread in between: the event loop writes it (non-blocking), so a client reads it at once."""
    r, w = os.pipe()
    os.set_blocking(r, False)  # a read finds only what is already there
    out = StdoutLines(w)
    for i in range(100):
        line = f'{{"n": {i}}}\n'
        await out.write(line)
        assert os.read(r, 65536) == line.encode()  # already there, without yielding to the writer thread
    out.close(5.0)
    os.close(w)
    os.close(r)


async def test_a_reader_that_stops_holds_up_writes_instead_of_growing_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio, "HIGH_WATER_BYTES", 256 * 1024)
    monkeypatch.setattr(stdio, "LOW_WATER_BYTES", 64 * 1024)
    r, w = os.pipe()
    out = StdoutLines(w)
    message = "y" * 16383 + "\n"
    total = 200  # 3.2 MB: far more than the pipe (64 KB) plus the high-water mark
    written = 0

    async def writer() -> None:
        nonlocal written
        for _ in range(total):
            await out.write(message)
            written += 1

    got, done = bytearray(), threading.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        with anyio.fail_after(10):
            while out._unwritten <= stdio.HIGH_WATER_BYTES:  # noqa: SLF001 - what the limit bounds
                await anyio.sleep(0)  # a checkpoint, not a wait on time: the writer runs until it blocks
        await anyio.wait_all_tasks_blocked()
        assert written < total  # the writer is held, not queueing without end
        assert out._unwritten <= stdio.HIGH_WATER_BYTES + len(message)  # noqa: SLF001
        threading.Thread(target=read_all, args=(r, got, done), daemon=True).start()  # the client reads again
    out.close(5.0)
    os.close(w)
    assert await anyio.to_thread.run_sync(done.wait, 5.0)
    os.close(r)
    assert written == total and bytes(got) == message.encode() * total


async def test_a_closed_pipe_ends_the_writer_with_an_error() -> None:
    r, w = os.pipe()
    os.close(r)  # the client went away
    out = StdoutLines(w)
    with pytest.raises(OSError):
        with anyio.fail_after(5):
            while True:  # the first write fails in the thread; a later one reports it
                await out.write("{}\n")
                await anyio.to_thread.run_sync(lambda: None)  # let the writer thread run
    out.close(5.0)
    os.close(w)


def write_lines(out: StdoutLines, lines: list[str]) -> None:
    async def write() -> None:
        for line in lines:
            await out.write(line)

    anyio.run(write)


def test_close_writes_what_is_queued() -> None:
    r, w = os.pipe()
    out = StdoutLines(w)
    lines = [f'{{"n": {i}, "pad": "{"z" * 200}"}}\n' for i in range(2000)]  # about 440 KB: most wait in the queue
    write_lines(out, lines)
    assert out._unwritten > 0  # noqa: SLF001 - the pipe (64 KB) took what it could; the rest is queued
    got, done = bytearray(), threading.Event()
    threading.Thread(target=read_all, args=(r, got, done), daemon=True).start()
    out.close(5.0)
    os.close(w)
    assert done.wait(5.0)
    os.close(r)
    assert got.decode() == "".join(lines)


def test_only_a_pipe_is_made_non_blocking_and_it_is_given_back_blocking(tmp_path) -> None:
    """A terminal's or a file's blocking mode is shared with whoever else holds it (the shell): left alone."""
    r, w = os.pipe()
    out = StdoutLines(w)
    assert not os.get_blocking(w)
    out.close(5.0)
    assert os.get_blocking(w)
    os.close(w)
    os.close(r)

    fd = os.open(tmp_path / "out.jsonl", os.O_WRONLY | os.O_CREAT)
    out = StdoutLines(fd)
    assert os.get_blocking(fd)

    write_lines(out, [f"{i}\n" for i in range(50)])
    out.close(5.0)
    os.close(fd)
    assert (tmp_path / "out.jsonl").read_text() == "".join(f"{i}\n" for i in range(50))


# stdin


def stdin_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "hive-mcp-stdin"]


async def test_stdin_from_a_pipe_is_read_by_the_event_loop_and_given_back_blocking() -> None:
    """No thread in between: a request costs one wake-up of the loop. Lines arrive whole, in order; a blank
    line is left out, one that is not JSON is passed on (to be answered); the last line counts without its
    newline."""
    r, w = os.pipe()
    sent = [f'{{"n": {i}, "pad": "{"x" * (i % 500)}"}}' for i in range(300)]
    sent.insert(150, "not json")
    wire = ("\n".join(sent[:151]) + "\n\n \n" + "\n".join(sent[151:])).encode()
    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def read() -> None:
            async for line in stdio._stdin_lines(r):  # noqa: SLF001 - the transport's stdin end
                assert not os.get_blocking(r) and not stdin_threads()
                got.append(line)

        tg.start_soon(read)
        for i in range(0, len(wire), 1000):  # in pieces, so lines are split across reads
            await anyio.wait_all_tasks_blocked()
            os.write(w, wire[i : i + 1000])
        os.close(w)
    assert got == [line + "\n" for line in sent[:-1]] + [sent[-1]]
    assert os.get_blocking(r)
    os.close(r)


async def test_a_pipe_reader_waiting_for_input_stops_when_cancelled_and_gives_the_pipe_back_blocking() -> None:
    r, w = os.pipe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                async for _ in stdio._stdin_lines(r):  # noqa: SLF001
                    pass

            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            assert not os.get_blocking(r)
            tg.cancel_scope.cancel()
    assert os.get_blocking(r)
    os.close(w)
    os.close(r)


async def test_stdin_from_a_file_is_read_by_a_thread_and_left_blocking(tmp_path) -> None:
    """A file cannot be waited on by the loop, and its blocking mode is shared with whoever opened it."""
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"b": 2}\n')
    fd = os.open(tmp_path / "in.jsonl", os.O_RDONLY)
    got = []
    async for line in stdio._stdin_lines(fd):  # noqa: SLF001
        assert os.get_blocking(fd) and stdin_threads()
        got.append(line)
    os.close(fd)
    assert got == ['{"a": 1}\n', '{"b": 2}\n']


async def lines_of(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_a_message_the_session_sends_is_in_the_pipe_when_its_send_returns() -> None:
    """The session's write stream writes the line itself: no writer task between the session and the pipe."""
    r, w = os.pipe()
    os.set_blocking(r, False)  # a read finds only what is already there
    out = StdoutLines(w)
    async with stdio._session_streams(lines_of(), out) as (_, write_stream):
        for i in range(50):
            params = {"progressToken": 1, "progress": i, "message": f"part {i}"}
            note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=params)
            await write_stream.send(SessionMessage(note))
            line = os.read(r, 65536)
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            assert json.loads(line) == {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}
    out.close(5.0)
    os.close(w)
    os.close(r)


async def test_a_notification_given_as_plain_json_is_the_line_the_sdk_would_write_in_the_pipe_when_it_returns() -> None:
    """The session's write stream writes a notification the relay gives as plain JSON itself, byte for byte the
    line the SDK's models make; text that is not valid Unicode (a lone surrogate) is written as U+FFFD, a line the
    SDK's own parser reads, not a failed write."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    out = StdoutLines(w)
    async with stdio._session_streams(lines_of(), out) as (_, write_stream):
        params = {"progressToken": "t", "progress": 3, "message": "déjà \n vu"}
        await write_stream.notify(7, "notifications/progress", params)
        note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=params)
        assert os.read(r, 65536) == (note.model_dump_json(by_alias=True, exclude_unset=True) + "\n").encode()
        cut = {"progressToken": "t", "progress": 4, "message": "half \ud83d"}
        await write_stream.notify(7, "notifications/progress", cut)
        line = os.read(r, 65536)
        assert JSONRPCNotification.model_validate_json(line).params == {**cut, "message": "half \ufffd"}
        await write_stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await write_stream.notify(7, "notifications/progress", params)
    out.close(5.0)
    os.close(w)
    os.close(r)


async def test_stdin_lines_reach_the_session_as_messages_and_a_bad_notification_or_response_as_its_error() -> None:
    """No one answers a notification or a response, so a malformed one goes to the session as the SDK's own
    transport hands it over: as the validation error."""
    r, w = os.pipe()
    out = StdoutLines(w)
    request = '{"jsonrpc": "2.0", "id": 7, "method": "ping"}\n'
    bad_notification = '{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": 5}\n'
    bad_response = '{"jsonrpc": "2.0", "id": 3, "error": "no"}\n'
    async with stdio._session_streams(lines_of(request, bad_notification, bad_response, request), out) as (
        read_stream,
        _,
    ):
        with anyio.fail_after(5):
            items = [item async for item in read_stream]
    out.close(5.0)
    os.close(w)
    os.close(r)
    assert len(items) == 4
    assert isinstance(items[1], ValidationError) and isinstance(items[2], ValidationError)
    for item in (items[0], items[3]):
        assert isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCRequest)
        assert (item.message.id, item.message.method) == (7, "ping")


async def test_the_session_sees_a_client_gone_as_its_transport_broken_and_a_closed_stream_as_closed() -> None:
    r, w = os.pipe()
    os.close(r)  # the client went away
    out = StdoutLines(w)
    ping = SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=1, method="ping"))
    async with stdio._session_streams(lines_of(), out) as (_, write_stream):
        with pytest.raises(anyio.BrokenResourceError), anyio.fail_after(5):
            while True:  # the first failed write may be the thread's; a later send reports it
                await write_stream.send(ping)
                await anyio.to_thread.run_sync(lambda: None)
        await write_stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await write_stream.send(ping)
    out.close(5.0)
    os.close(w)


ANSWER_S = 90.0  # a server imports mcp (and, serving, litellm in the background) on a loaded machine


def test_every_request_the_parser_refuses_gets_one_answer_and_the_session_goes_on(tmp_path: Path) -> None:
    """pydantic's JSON parser refuses a lone surrogate escape (JSON's `\\ud800`), which the session would
    drop without a word, leaving the client waiting forever. Each line below is answered, by id: a lone
    surrogate in a tool's argument as the tool's error naming the field, in a method as an unknown method;
    one in a key names where the key is; one in an id comes back as U+FFFD; a request that is not a JSON-RPC
    request is invalid (-32600), to its id when it has one that can be read, else to id null.

    JSON-RPC 2.0 §5 has a request answered whatever it is: a line that is not JSON (a trailing comma, a line
    cut short, plain text) is a parse error (-32700, id null); a batch (an array), which MCP no longer
    takes, is one invalid request (-32600, id null), none of its members run; so is a request whose id is
    null, which MCP forbids, and one whose method is not a string (JSON-RPC's own example answers it, id
    null: without a method's name it is no notification). A notification (no id) and a response from the
    client get no answer, however malformed, nor does a blank line. Each bad line gets exactly one answer, in the order sent, the request
    after them all is answered too, and stdout carries nothing but JSON-RPC lines (`ask_stdio` checks each)."""
    call = r'{"name":"complete","arguments":{"prompt":"x","system":"\ud800"}}'
    lines = [
        json.dumps(INITIALIZE),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":' + call + "}",
        r'{"jsonrpc":"2.0","id":6,"method":"tools/\udc00"}',
        r'{"jsonrpc":"2.0","id":"a\ud800","method":"ping"}',
        '{"jsonrpc":"2.0","id":7,"method":["ping"]}',
        '{"jsonrpc":"2.0","id":8,"method":"ping",}',  # not JSON: a trailing comma
        json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
        '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"complete","arguments":{"prompt":"x",'
        r'"messages":[{"role":"user","content":"y","n\udc00te":1}]}}}',
        '{"jsonrpc":"2.0","id":99,"method":"ping"',  # not JSON: cut short
        "hello",  # not JSON: plain text
        "",  # blank: no answer
        '[{"jsonrpc":"2.0","id":100,"method":"ping"}]',  # a batch
        '{"jsonrpc":"2.0","id":102}',  # neither a request nor a response, its id readable
        '{"jsonrpc":"2.0","id":null,"method":"ping"}',
        '{"jsonrpc":"2.0","method":1,"params":"bar"}',  # JSON-RPC's own example: no notification, its method no name
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}',  # a notification: no answer
        '{"jsonrpc":"2.0","id":103,"result":{}}',  # responses, to nothing this server asked: no answer
        '{"jsonrpc":"2.0","id":104,"error":"no"}',
        json.dumps({"jsonrpc": "2.0", "id": 11, "method": "ping"}),
    ]
    every: list[dict] = []
    replies, code, stderr = ask_stdio(
        [sys.executable, "-m", "hive_mcp", "--log-level", "INFO"], lines, {1, 5, 6, "a\ufffd", 7, 9, 10, 102, 11},
        cwd=tmp_path, timeout=ANSWER_S, every=every,
        env=child_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true",
                      HIVE_HOME=str(tmp_path / "home"), HIVE_MCP_API_BASE="http://127.0.0.1:9/v1"),
    )  # fmt: skip
    assert code == 0, (sorted(map(repr, replies)), stderr)
    # Answered by the line reader as it reads, so all of them are out before the last ping's reply.
    nulls = [message["error"] for message in every if "id" in message and message["id"] is None]
    assert [error["code"] for error in nulls] == [-32700, -32700, -32700, -32600, -32600, -32600], nulls
    assert "method" in nulls[5]["message"]
    assert "batch" in nulls[3]["message"] and "2025-11-25" in nulls[3]["message"]  # the version in force
    answered = [message["id"] for message in every if "id" in message]
    assert sorted(map(repr, answered)) == sorted(map(repr, [1, 5, 6, "a\ufffd", 7, 9, 10, 102, 11, *[None] * 6]))
    assert replies[102]["error"]["code"] == -32600
    assert replies[11]["result"] == {}
    refused = replies[5]["result"]
    assert refused["isError"] is True
    assert refused["content"][0]["text"] == "invalid arguments: system: not valid Unicode (lone surrogate U+D800)"
    assert replies[6]["error"]["code"] == -32601  # no such method
    assert "result" in replies["a\ufffd"]
    assert replies[7]["error"]["code"] == -32600
    for error in (replies[6]["error"], replies[7]["error"], replies[102]["error"], *nulls):
        assert "\n" not in error["message"], error
    assert "tools" in replies[9]["result"]
    keyed = replies[10]["result"]  # in a key: named by where the key is
    assert keyed["content"][0]["text"] == "invalid arguments: messages[0]: a key is not valid Unicode (lone surrogate U+DC00)"
    assert "Traceback" not in stderr


def test_a_progress_token_with_a_fraction_gets_its_progress_notifications_carrying_that_number(tmp_path: Path) -> None:
    """MCP's progress token is a string or any number; the SDK's models take only a string or an integer and
    refused `3.5` (-32602). The call is served, and every notification about it carries 3.5 as a number; the
    integral `4.0`, which the SDK would not take for a token either, comes back as `4.0`."""
    from harness.upstream import Reply, Upstream
    from tests.conftest import MODEL, TEST_KEY

    def call(request_id: int, token: float) -> str:
        params = {"name": "stream_complete", "arguments": {"prompt": "hi"}, "_meta": {"progressToken": token}}
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    with Upstream() as upstream:
        upstream.script(Reply.stream(["one ", "two"]), Reply.stream(["three"]))
        lines = [json.dumps(INITIALIZE), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                 call(2, 3.5), call(3, 4.0)]  # fmt: skip
        every: list[dict] = []
        replies, code, stderr = ask_stdio(
            [sys.executable, "-m", "hive_mcp"], lines, {1, 2, 3}, cwd=tmp_path, timeout=ANSWER_S, every=every,
            env=child_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true", HIVE_MCP_MODEL=MODEL,
                          HIVE_HOME=str(tmp_path / "home"), HIVE_MCP_API_BASE=upstream.base_url,
                          HIVE_MCP_API_KEY=TEST_KEY),
        )  # fmt: skip
    assert code == 0, stderr
    for request_id in (2, 3):
        assert replies[request_id]["result"]["isError"] is False, replies[request_id]
    tokens = [m["params"]["progressToken"] for m in every if m.get("method") == "notifications/progress"]
    assert 3.5 in tokens and 4.0 in tokens, tokens
    assert all(isinstance(token, float) for token in tokens), tokens
    assert set(tokens) == {3.5, 4.0}, tokens


def test_a_string_progress_token_that_reads_like_the_servers_alias_for_a_number_comes_back_as_that_string(
    tmp_path: Path,
) -> None:
    """The server carries a progress token of 3.5 as the string `hive-mcp:number-token:3.5`; a client whose own
    token is that string gets that string back on its notifications, not the number 3.5, and so does one whose
    token reads like the server's alias for such a string."""
    from harness.upstream import Reply, Upstream
    from tests.conftest import MODEL, TEST_KEY

    def call(request_id: int, token: str | float) -> str:
        params = {"name": "stream_complete", "arguments": {"prompt": "hi"}, "_meta": {"progressToken": token}}
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    sent = {2: "hive-mcp:number-token:3.5", 3: "hive-mcp:string-token:hive-mcp:number-token:3.5", 4: 3.5}
    with Upstream() as upstream:
        upstream.script(*[Reply.stream(["one ", "two"]) for _ in sent])
        lines = [json.dumps(INITIALIZE), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                 *[call(request_id, token) for request_id, token in sent.items()]]  # fmt: skip
        every: list[dict] = []
        replies, code, stderr = ask_stdio(
            [sys.executable, "-m", "hive_mcp"], lines, {1, *sent}, cwd=tmp_path, timeout=ANSWER_S, every=every,
            env=child_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true", HIVE_MCP_MODEL=MODEL,
                          HIVE_HOME=str(tmp_path / "home"), HIVE_MCP_API_BASE=upstream.base_url,
                          HIVE_MCP_API_KEY=TEST_KEY),
        )  # fmt: skip
    assert code == 0, stderr
    for request_id in sent:
        assert replies[request_id]["result"]["isError"] is False, replies[request_id]
    tokens = [m["params"]["progressToken"] for m in every if m.get("method") == "notifications/progress"]
    assert {(type(token), token) for token in tokens} == {(type(token), token) for token in sent.values()}, tokens
