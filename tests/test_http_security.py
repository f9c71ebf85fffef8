"""The HTTP surface's guards against `python -m hive_mcp --transport http|sse` as a subprocess.

Bearer tokens (401, tokens never logged), DNS-rebinding protection (421/403,
extra hosts and origins), the body limit (413 on Content-Length and on a chunked
body, before the body is read whole), /healthz, and the dashboard behind the
same token and host rules.

HTTP-level checks use raw httpx (or a raw socket, where the point is what the
server does before the request is complete); MCP checks use the SDK client.
Servers are shared by the tests of the module: each one imports litellm.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError

from hive_mcp import __version__
from tests.conftest import MODEL, TEST_KEY
from tests.http_access import HTTP_TOKENS, IO_S, MCP_HEADERS, TRANSPORTS, raw
from tests.servers import TOOLS, HttpServer, Session, authed_target, bearer, exited_cleanly, server_env
from tests.clients import text_of
from harness.processes import INITIALIZE
from harness.upstream import Reply, Upstream

SSE_TOKENS = ("tok-sse-first-0123456789abcdef", "tok-sse-second-0123456789abcdef")
EXTRA_HOST = "mcp.example.test"
EXTRA_ORIGIN = "https://app.example.test"
SSE_BODY_LIMIT = 65536  # the sse server's HIVE_MCP_MAX_BODY_BYTES; the http server keeps the default
DEFAULT_BODY_LIMIT = 4 * 1024 * 1024


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(sec_upstream: Upstream, workdir: Path) -> Iterator[dict[str, HttpServer]]:
    """An http server (tokens in HIVE_MCP_AUTH_TOKEN) and an sse server (tokens in a file), at DEBUG."""
    token_file = workdir / "tokens.txt"
    token_file.write_text(f"# clients of the sse server\n{SSE_TOKENS[0]}\n\n  {SSE_TOKENS[1]}  \n")
    http_env = server_env(sec_upstream, workdir / "dumps-http", api_key=True)
    http_env.update(
        HIVE_MCP_AUTH_TOKEN=",".join(HTTP_TOKENS),
        HIVE_MCP_ALLOWED_HOSTS=EXTRA_HOST,
        HIVE_MCP_LOG_LEVEL="DEBUG",
    )
    sse_env = server_env(sec_upstream, workdir / "dumps-sse", api_key=True)
    sse_env.update(
        HIVE_MCP_AUTH_TOKEN_FILE=str(token_file),
        HIVE_MCP_MAX_BODY_BYTES=str(SSE_BODY_LIMIT),
        HIVE_MCP_LOG_LEVEL="DEBUG",
    )
    servers = {
        "http": HttpServer("http", http_env, workdir, "guarded-http", args=["--allowed-origin", EXTRA_ORIGIN]),
        "sse": HttpServer(
            "sse", sse_env, workdir, "guarded-sse",
            args=["--allowed-host", EXTRA_HOST.title(), "--allowed-origin", EXTRA_ORIGIN.upper()],  # any case
        ),
    }
    try:
        for server in servers.values():
            server.wait_loaded()  # a test's call is bounded as a call, not as litellm's import too
        yield servers
    finally:
        for server in servers.values():
            server.signal_stop()
        problems = []
        for name, server in servers.items():
            rc = server.terminate()
            if rc != 0 or "Traceback" in server.stderr():
                problems.append(f"{name} exited with {rc}:\n{server.stderr()[-3000:]}")
        assert not problems, "\n\n".join(problems)


def tokens_of(transport: str) -> tuple[str, ...]:
    return HTTP_TOKENS if transport == "http" else SSE_TOKENS


def endpoints(server: HttpServer) -> list[tuple[str, str]]:
    """(method, path) of each MCP endpoint of the server."""
    if server.transport == "http":
        return [("POST", "/mcp"), ("GET", "/mcp"), ("DELETE", "/mcp")]
    return [("GET", "/sse"), ("POST", "/messages/?session_id=" + "0" * 32)]


def status_of(client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> int:
    """The status of a request; the body is not read (an event stream may never end)."""
    with client.stream(method, path, headers={**MCP_HEADERS, **headers}, json=INITIALIZE) as r:
        return r.status_code


def first_sse_event(response: httpx.Response) -> str:
    """The first event of an event stream, read as it arrives."""
    text = ""
    for chunk in response.iter_text():
        text += chunk
        if "\n\n" in text.replace("\r\n", "\n"):
            break
    return text


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requests_without_a_valid_token_get_401(transport: str, guarded: dict[str, HttpServer]) -> None:
    server = guarded[transport]
    good = tokens_of(transport)[0]
    wrong = [
        {},  # none
        bearer("tok-wrong-0123456789abcdef"),
        bearer(good[:-1]),  # a prefix of a real one
        bearer(good + "x"),  # a real one, extended
        bearer(tokens_of("sse" if transport == "http" else "http")[0]),  # the other server's
        {"authorization": f"Basic {good}"},  # the right secret under the wrong scheme
        {"authorization": "Bearer"},
    ]
    with raw(server) as client:
        for method, path in [*endpoints(server), ("GET", "/"), ("GET", "/no/such/path")]:
            for headers in wrong:
                r = client.request(method, path, headers={**MCP_HEADERS, **headers}, json=INITIALIZE)
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
                if headers.get("authorization", "").startswith("Bearer "):
                    assert 'error="invalid_token"' in r.headers["www-authenticate"]
                assert good not in r.text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_right_token_serves_mcp(transport: str, guarded: dict[str, HttpServer], sec_upstream: Upstream) -> None:
    server = guarded[transport]
    sec_upstream.script(Reply.text("authenticated hello"))

    async def go(c: Client) -> tuple[set[str], Any]:
        tools = {t.name for t in (await c.list_tools()).tools}
        return tools, await c.call_tool("complete", {"prompt": "hello"})

    for token in tokens_of(transport)[1:]:  # the second of two: every configured token works
        session = Session(authed_target(server, token), "legacy")
        try:
            tools, result = session.run(go)
            assert session.faults == []
        finally:
            session.close()
        assert tools == TOOLS
        assert not result.is_error, text_of(result)
        assert text_of(result) == "authenticated hello"
    # The SDK's client gives up on a 401: no session without the token.
    with pytest.raises(Exception):  # noqa: B017 - whichever error the client raises for a 401
        Session(authed_target(server, "tok-wrong-0123456789abcdef"), "legacy").close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tokens_never_reach_the_log(transport: str, guarded: dict[str, HttpServer]) -> None:
    server = guarded[transport]
    presented_wrong = "tok-presented-wrong-0123456789abcdef"
    with raw(server) as client:
        for token in (*tokens_of(transport), presented_wrong):
            for method, path in endpoints(server):
                status_of(client, method, path, bearer(token))
    # Each request is logged before its response is sent (stderr unbuffered): all are in the file.
    log = server.stderr()
    assert " DEBUG " in log and " 401" in log  # the log is verbose, and saw these requests
    for token in (*HTTP_TOKENS, *SSE_TOKENS, presented_wrong):
        assert token not in log
    assert TEST_KEY not in log
    assert "bearer-token authentication on (2 tokens)" in log


# ---------------------------------------------------------------------------
# /healthz
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_healthz_answers_without_auth_and_says_nothing_else(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    server = guarded[transport]
    with raw(server) as client:
        r = client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        # A load balancer probes by address, with whatever Host it likes.
        assert client.get("/healthz", headers={"host": "10.1.2.3"}).status_code == 200
        assert client.head("/healthz").status_code == 200
        assert client.post("/healthz").status_code == 405
    everything = r.text + json.dumps(dict(r.headers))
    for secret in (__version__, MODEL, "gpt-4o-mini", "uvicorn", "hive", *tokens_of(transport)):
        assert secret not in everything, secret


# ---------------------------------------------------------------------------
# DNS-rebinding protection
# ---------------------------------------------------------------------------


def probe(server: HttpServer, client: httpx.Client, headers: dict[str, str]) -> int:
    """The status of opening an MCP exchange with these extra headers (token included)."""
    all_headers = {**MCP_HEADERS, **bearer(tokens_of(server.transport)[0]), **headers}
    if server.transport == "http":
        return client.post("/mcp", headers=all_headers, json=INITIALIZE).status_code
    with client.stream("GET", "/sse", headers=all_headers) as r:
        if r.status_code == 200:
            assert "endpoint" in first_sse_event(r)
        return r.status_code


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_host_gets_421_and_bad_origin_403_unless_allowed(transport: str, guarded: dict[str, HttpServer]) -> None:
    server = guarded[transport]
    port = server.port
    with raw(server) as client:
        assert probe(server, client, {}) == 200
        assert probe(server, client, {"origin": f"http://127.0.0.1:{port}"}) == 200
        assert probe(server, client, {"host": f"evil.example:{port}"}) == 421
        assert probe(server, client, {"host": f"{EXTRA_HOST}.evil.example:{port}"}) == 421
        assert probe(server, client, {"origin": "http://evil.example"}) == 403
        assert probe(server, client, {"origin": f"{EXTRA_ORIGIN}.evil.example"}) == 403
        # Configured: HIVE_MCP_ALLOWED_HOSTS / --allowed-host (any port when none is given) ...
        assert probe(server, client, {"host": f"{EXTRA_HOST}:{port}"}) == 200
        assert probe(server, client, {"host": EXTRA_HOST}) == 200
        # ... and --allowed-origin.
        assert probe(server, client, {"host": f"{EXTRA_HOST}:{port}", "origin": EXTRA_ORIGIN}) == 200
        # A host name is the same name in any case, configured (the sse server's) or sent.
        assert probe(server, client, {"host": f"{EXTRA_HOST.upper()}:{port}", "origin": EXTRA_ORIGIN.title()}) == 200
        assert probe(server, client, {"host": f"LocalHost:{port}", "origin": f"HTTP://LOCALHOST:{port}"}) == 200


# ---------------------------------------------------------------------------
# Body limit
# ---------------------------------------------------------------------------


def body_limit(server: HttpServer) -> int:
    return DEFAULT_BODY_LIMIT if server.transport == "http" else SSE_BODY_LIMIT


def post_path(server: HttpServer) -> str:
    return "/mcp" if server.transport == "http" else "/messages/?session_id=" + "0" * 32


def request_head(server: HttpServer, extra: str) -> bytes:
    token = tokens_of(server.transport)[0]
    return (
        f"POST {post_path(server)} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\n{extra}\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, str]:
    """The status and body of the response, read until the server closes the connection."""
    sock.settimeout(IO_S)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    return int(head.split()[1]), body.decode(errors="replace")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_content_length_over_the_limit_gets_413_before_any_body(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    server = guarded[transport]
    limit = body_limit(server)
    with socket.create_connection((server.host, server.port), timeout=IO_S) as sock:
        # Only the head: a server that waited for the body would time out here.
        sock.sendall(request_head(server, f"Content-Length: {limit + 1}\r\n"))
        status, body = read_response(sock)
    assert status == 413, body
    assert str(limit) in body
    with raw(server) as client:  # exactly at the limit is not too large: it reaches the SDK, which parses it
        r = client.post(post_path(server), headers={**MCP_HEADERS, **bearer(tokens_of(transport)[0])},
                        content=b" " * limit)
        assert r.status_code == AT_LIMIT_STATUS[transport], (r.status_code, r.text)


# What the SDK answers a body of blanks exactly at the limit: not JSON for /mcp; for /messages/, no such session.
AT_LIMIT_STATUS = {"http": 400, "sse": 404}


class CountedBody:
    """A request body of blanks that counts what the client managed to send (httpx sends it chunked)."""

    def __init__(self, total: int) -> None:
        self.total, self.sent = total, 0

    def __iter__(self) -> Iterator[bytes]:
        piece = b" " * 65536
        while self.sent < self.total:
            self.sent += len(piece)
            yield piece


@pytest.mark.parametrize(("framing", "size"), [("content-length", 6 << 20), ("chunked", 12 << 20)])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_that_sends_the_whole_body_first_reads_the_413(
    transport: str, framing: str, size: int, guarded: dict[str, HttpServer]
) -> None:
    """httpx, like the MCP SDK's client, sends the whole body before it reads the response.

    The server answers 413 at once and then reads the rest of the body, so the
    client sends all of it and reads the 413. Closed on while still sending,
    the client's writes fail: httpx then reads what arrived before the reset
    (which Linux keeps; other systems drop it, and clients see ReadError), so
    what is asserted is both: the 413, and a body sent in full.
    """
    server = guarded[transport]
    limit = body_limit(server)
    body = CountedBody(size)
    headers = {**MCP_HEADERS, **bearer(tokens_of(transport)[0])}
    if framing == "content-length":
        headers["content-length"] = str(size)
    with raw(server) as client:
        r = client.post(post_path(server), headers=headers, content=body)
        assert r.status_code == 413, r.text
        assert r.json() == {"error": f"request body larger than {limit} bytes"}
        assert body.sent == body.total, f"the server closed after {body.sent} of {body.total} bytes"
    with raw(server) as client:
        assert client.get("/healthz").status_code == 200  # and the server is fine


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_without_a_token_that_sends_the_whole_body_first_reads_the_401(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    """The 401 is answered once the headers are in; the server then reads the body before it closes, as for a
    413. Closed with the body unread, the connection is reset under a client still sending."""
    server = guarded[transport]
    body = CountedBody(6 << 20)
    headers = {**MCP_HEADERS, "content-length": str(body.total)}
    with raw(server) as client:
        r = client.post(post_path(server), headers=headers, content=body)
        assert r.status_code == 401, r.text
        assert body.sent == body.total, f"the server closed after {body.sent} of {body.total} bytes"


def test_the_mcp_client_reads_the_413_as_an_error_and_its_session_goes_on(guarded: dict[str, HttpServer]) -> None:
    """The SDK's streamable HTTP client sending a 6 MiB call: an MCPError for that call, not a broken transport."""
    server = guarded["http"]

    async def go(c: Client) -> tuple[str, set[str]]:
        with pytest.raises(MCPError) as info:
            await c.call_tool("complete", {"prompt": " " * (6 << 20)})
        return str(info.value), {t.name for t in (await c.list_tools()).tools}

    session = Session(authed_target(server, HTTP_TOKENS[0]), "legacy")
    try:
        message, tools = session.run(go)
        assert session.faults == []
    finally:
        session.close()
    assert "error response" in message
    assert tools == TOOLS  # the session outlives the refused call


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chunked_body_over_the_limit_gets_413_while_it_streams(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    server = guarded[transport]
    limit = body_limit(server)
    piece = b" " * 65536
    with socket.create_connection((server.host, server.port), timeout=IO_S) as sock:
        sock.sendall(request_head(server, "Transfer-Encoding: chunked\r\n"))
        sent = 0
        while sent <= limit:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        # No final chunk: the body never ends. The answer must come anyway.
        status, body = read_response(sock)
    assert status == 413, body
    assert str(limit) in body
    with raw(server) as client:
        assert client.get("/healthz").status_code == 200  # and the server is fine


# ---------------------------------------------------------------------------
# The dashboard, served beside /mcp
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_dashboard_is_served_behind_the_same_token_and_host_rules(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    server = guarded[transport]
    token = tokens_of(transport)[0]
    with raw(server) as client:
        assert client.get("/dashboard/data").status_code == 401
        assert client.get("/dashboard/data", headers=bearer("wrong-token-0123456789")).status_code == 401
        page = client.get("/dashboard")  # a browser without a session gets the sign-in form, not the data
        assert page.status_code == 401 and "<form" in page.text and 'name="token"' in page.text
        data = client.get("/dashboard/data", headers=bearer(token))
        assert data.status_code == 200 and data.json()["failures"]["total"] >= 0
        assert client.get("/dashboard/data", headers={**bearer(token), "host": "evil.example:80"}).status_code == 421
        signed_in = client.post("/dashboard/login", data={"token": token}, headers={"origin": server.base_url})
        assert signed_in.status_code in (200, 303) and "hive_dashboard" in "".join(
            signed_in.headers.get_list("set-cookie")
        ).lower()


def statuses_on_one_connection(server: HttpServer, request: bytes, times: int = 3) -> list[int | str]:
    """The status of each of `times` copies of `request` sent in turn on one connection; "closed" once the server
    has closed it."""
    found: list[int | str] = []
    with socket.create_connection((server.host, server.port), timeout=IO_S) as sock:

        def more(data: bytes) -> bytes:
            if not (chunk := sock.recv(65536)):
                raise ConnectionAbortedError
            return data + chunk

        try:
            for _ in range(times):
                sock.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data = more(data)
                head, _, body = data.partition(b"\r\n\r\n")
                while len(body) < int(re.search(rb"content-length: *(\d+)", head, re.I)[1]):
                    body = more(body)
                found.append(int(head.split()[1]))
        except OSError:  # reset, closed, or a broken pipe
            found.append("closed")
    return found


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_request_the_dashboard_refuses_closes_its_connection_as_one_to_mcp_does(
    transport: str, guarded: dict[str, HttpServer]
) -> None:
    server = guarded[transport]
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    wrong = "Authorization: Bearer wrong-token-0123456789\r\n"
    form, confirm = "token=wrong-token-0123456789", "confirm=x"
    posted = f"Origin: {server.base_url}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    for request in (
        f"POST {post_path(server)} HTTP/1.1\r\n{host}{wrong}Content-Length: 2\r\n\r\n{{}}",  # as the guard answers
        f"GET /dashboard/data HTTP/1.1\r\n{host}{wrong}\r\n",
        f"GET /dashboard/data HTTP/1.1\r\n{host}\r\n",
        f"GET /dashboard HTTP/1.1\r\n{host}\r\n",  # the sign-in form, with its 401
        f"POST /dashboard/login HTTP/1.1\r\n{host}{posted}Content-Length: {len(form)}\r\n\r\n{form}",
        f"POST /dashboard/dumps/x/delete HTTP/1.1\r\n{host}{posted}Content-Length: {len(confirm)}\r\n\r\n{confirm}",
    ):
        assert statuses_on_one_connection(server, request.encode()) == [401, "closed"], request
    log = server.stderr()  # each refusal is logged before it is answered
    assert " DEBUG hive_mcp.http: 401 for POST /dashboard/login from 127.0.0.1:" in log
    assert "sign-in refused" not in log


def test_a_malformed_sse_message_is_one_line_in_the_log_naming_none_of_its_body(
    sec_upstream: Upstream, tmp_path: Path
) -> None:
    """The POST gets the SDK's 400; the log gets one WARNING line, with no traceback and nothing of the body;
    the server serves on. At the default log level (DEBUG shows every message the SDK receives)."""
    env = {**server_env(sec_upstream, tmp_path / "dumps", api_key=True), "HIVE_MCP_AUTH_TOKEN": SSE_TOKENS[0]}
    server = HttpServer("sse", env, tmp_path, "sse-malformed")
    private = "MY-PRIVATE-DIAGNOSIS-0123456789"
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"prompt":"' + private.encode()
    sec_upstream.script(Reply.text("still serving"))
    try:
        server.wait_loaded()  # the call below is bounded as a call, not as litellm's import too
        headers = {**MCP_HEADERS, **bearer(SSE_TOKENS[0])}
        with raw(server) as client, client.stream("GET", "/sse", headers=headers) as events:
            event = first_sse_event(events)
            endpoint = next(line[5:].strip() for line in event.splitlines() if line.startswith("data:"))
            refused = client.post(endpoint, headers=headers, content=body)
        assert refused.status_code == 400 and refused.text == "Could not parse message", refused.text
        session = Session(authed_target(server, SSE_TOKENS[0]), "legacy")
        try:
            result = session.run(lambda c: c.call_tool("complete", {"prompt": "hello"}))
        finally:
            session.close()
        assert text_of(result) == "still serving"
    finally:
        rc = server.terminate()
    log = exited_cleanly(server, rc)  # no traceback
    assert private not in log, log
    [line] = [line for line in log.splitlines() if "mcp.server.sse" in line]
    assert " WARNING " in line and "400" in line, line
