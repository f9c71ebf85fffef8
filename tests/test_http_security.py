"""The HTTP surface against `python -m hive_mcp --transport http|sse` as a subprocess.

Bearer tokens (401, tokens never logged), DNS-rebinding protection (421/403,
extra hosts and origins), the body limit (413 on Content-Length and on a chunked
body, before the body is read whole), /healthz, the refusal to serve a
non-loopback address unauthenticated, and SIGTERM with calls in flight.

HTTP-level checks use raw httpx (or a raw socket, where the point is what the
server does before the request is complete); MCP checks use the SDK client.
Servers are shared by the tests of the module: each one imports litellm.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from hive_mcp import __version__
from hive_mcp.settings import Settings, SettingsError, load_settings
from tests.conftest import TEST_KEY
from harness.processes import INITIALIZE, ROOT
from tests.conftest import MODEL
from tests.servers import TOOLS, HttpServer, Session, authed_target, bearer, server_env, wait_exit
from tests.clients import text_of
from harness.upstream import Reply, Upstream

HTTP_TOKENS = ("tok-http-first-0123456789abcdef", "tok-http-second-0123456789abcdef")
SSE_TOKENS = ("tok-sse-first-0123456789abcdef", "tok-sse-second-0123456789abcdef")
EXTRA_HOST = "mcp.example.test"
EXTRA_ORIGIN = "https://app.example.test"
SSE_BODY_LIMIT = 65536  # the sse server's HIVE_MCP_MAX_BODY_BYTES; the http server keeps the default
DEFAULT_BODY_LIMIT = 4 * 1024 * 1024
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
IO_S = 15.0  # one HTTP exchange, with room for a loaded machine


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sec_upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-security")


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
            args=["--allowed-host", EXTRA_HOST, "--allowed-origin", EXTRA_ORIGIN],
        ),
    }
    try:
        for server in servers.values():
            server.wait_ready()
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


TRANSPORTS = ["http", "sse"]


def tokens_of(transport: str) -> tuple[str, ...]:
    return HTTP_TOKENS if transport == "http" else SSE_TOKENS


def raw(server: HttpServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, trust_env=False, timeout=IO_S)


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
# Refusing to serve the network unauthenticated
# ---------------------------------------------------------------------------


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback and can be bound, if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.255", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    if address.startswith("127.") or address == "0.0.0.0":
        return None
    try:
        with socket.socket() as probe_socket:
            probe_socket.bind((address, 0))
    except OSError:
        return None
    return address


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_non_loopback_without_a_token_refuses_to_start(
    transport: str, sec_upstream: Upstream, workdir: Path
) -> None:
    env = server_env(sec_upstream, workdir / "dumps-refuse", api_key=True)
    hosts = ["0.0.0.0", "::"] + ([a] if (a := non_loopback_address()) else [])
    for host in hosts:
        proc = run_cli("--transport", transport, "--host", host, "--port", "1", env=env, cwd=workdir)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("hive-mcp: error: ") and host in lines[0]
        assert "HIVE_MCP_AUTH_TOKEN" in lines[0] and "--allow-unauthenticated" in lines[0]
        assert proc.stdout == ""
    # From the environment too; loopback needs no token.
    proc = run_cli("--transport", transport, "--port", "1", env={**env, "HIVE_MCP_HOST": "0.0.0.0"}, cwd=workdir)
    assert proc.returncode == 2 and "HIVE_MCP_AUTH_TOKEN" in proc.stderr


def test_non_loopback_with_allow_unauthenticated_serves_and_accepts_its_own_address(
    sec_upstream: Upstream, workdir: Path
) -> None:
    address = non_loopback_address()
    host = address or "0.0.0.0"
    env = server_env(sec_upstream, workdir / "dumps-open", api_key=True)
    args = ["--allow-unauthenticated"] + ([] if address else ["--allowed-host", "127.0.0.1"])
    server = HttpServer("http", env, workdir, "open-http", host=host, args=args)
    try:
        server.wait_ready()
        with raw(server) as client:
            assert client.get("/healthz").status_code == 200
            if address:  # the bound host:port is accepted as Host without configuring it
                r = client.post("/mcp", headers=MCP_HEADERS, json=INITIALIZE)
                assert r.request.headers["host"] == f"{address}:{server.port}"
                assert r.status_code == 200, r.text
            r = client.post("/mcp", headers={**MCP_HEADERS, "host": "evil.example"}, json=INITIALIZE)
            assert r.status_code == 421
        rc = server.terminate()
    finally:
        if server.returncode is None:
            server.terminate()
    log = server.stderr()
    assert rc == 0, log
    assert "without authentication" in log and " WARNING " in log


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_wildcard_bind_without_allowed_hosts_refuses_to_start(
    transport: str, sec_upstream: Upstream, workdir: Path
) -> None:
    env = {**server_env(sec_upstream, workdir / "dumps-wild", api_key=True), "HIVE_MCP_AUTH_TOKEN": HTTP_TOKENS[0]}
    for host in ("0.0.0.0", "::"):
        proc = run_cli("--transport", transport, "--host", host, "--port", "1", env=env, cwd=workdir)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("hive-mcp: error: ") and host in lines[0] and "--allowed-host" in lines[0]


OTHER_MODEL = "openai/gpt-4o-expensive"


def test_exposed_http_without_allowed_models_serves_only_the_default_model(
    sec_upstream: Upstream, workdir: Path
) -> None:
    """Bound to 0.0.0.0 (reached over loopback here) with no HIVE_MCP_ALLOWED_MODELS: the default model only."""
    env = {**server_env(sec_upstream, workdir / "dumps-exposed", api_key=True), "HIVE_MCP_AUTH_TOKEN": HTTP_TOKENS[0]}
    server = HttpServer("http", env, workdir, "exposed-http", host="0.0.0.0", args=["--allowed-host", "127.0.0.1"])
    try:
        server.wait_ready()
        sec_upstream.script(Reply.text("from the default model"))

        async def go(c: Client) -> tuple[Any, Any]:
            other = await c.call_tool("complete", {"prompt": "hello", "model": OTHER_MODEL})
            default = await c.call_tool("complete", {"prompt": "hello"})
            return other, default

        before = len(sec_upstream.chat_requests())
        session = Session(authed_target(server, HTTP_TOKENS[0]), "legacy")
        try:
            other, default = session.run(go)
        finally:
            session.close()
        assert other.is_error and OTHER_MODEL in text_of(other) and "not allowed" in text_of(other)
        assert not default.is_error, text_of(default)
        assert text_of(default) == "from the default model"
        assert [r.body.get("model") for r in sec_upstream.chat_requests()[before:]] == [MODEL.split("/", 1)[1]]
        rc = server.terminate()
    finally:
        if server.returncode is None:
            server.terminate()
    log = server.stderr()
    assert rc == 0, log
    lines = [line for line in log.splitlines() if "HIVE_MCP_ALLOWED_MODELS" in line]
    assert len(lines) == 1 and f"only the default model, {MODEL}" in lines[0], log


def test_exposed_http_with_allowed_models_serves_them(sec_upstream: Upstream, workdir: Path) -> None:
    env = {
        **server_env(sec_upstream, workdir / "dumps-exposed-allowed", api_key=True),
        "HIVE_MCP_AUTH_TOKEN": HTTP_TOKENS[0],
        "HIVE_MCP_ALLOWED_MODELS": "openai/gpt-4o-*",
    }
    server = HttpServer("http", env, workdir, "exposed-allowed", host="0.0.0.0", args=["--allowed-host", "127.0.0.1"])
    try:
        server.wait_ready()
        sec_upstream.script(Reply.text("from the other model"))
        session = Session(authed_target(server, HTTP_TOKENS[0]), "legacy")
        try:
            result = session.run(lambda c: c.call_tool("complete", {"prompt": "hello", "model": OTHER_MODEL}))
        finally:
            session.close()
        assert not result.is_error, text_of(result)
        assert text_of(result) == "from the other model"
        server.terminate()
    finally:
        if server.returncode is None:
            server.terminate()
    assert "only the default model" not in server.stderr()


# ---------------------------------------------------------------------------
# SIGTERM with calls in flight
# ---------------------------------------------------------------------------

GRACE_S = 4.0
CALLS = 20
SIGTERM_TOKEN = "tok-sigterm-0123456789abcdef"
SIGTERM_CASES = [("http", "legacy"), ("http", "auto"), ("sse", "legacy")]


@pytest.fixture(scope="module")
def sigterm_servers(sec_upstream: Upstream, workdir: Path) -> Iterator[dict[tuple[str, str], HttpServer]]:
    """A server for each case, started together (each one imports litellm); each test stops its own."""
    servers = {}
    for transport, mode in SIGTERM_CASES:
        env = server_env(sec_upstream, workdir / f"dumps-sigterm-{transport}", api_key=True)
        env.update(
            HIVE_MCP_AUTH_TOKEN=SIGTERM_TOKEN, HIVE_MCP_SHUTDOWN_GRACE_S=str(GRACE_S), HIVE_MCP_LOG_LEVEL="DEBUG"
        )
        servers[(transport, mode)] = HttpServer(transport, env, workdir, f"sigterm-{transport}-{mode}")
    try:
        yield servers
    finally:
        for server in servers.values():
            server.terminate()


@pytest.mark.parametrize(("transport", "mode"), SIGTERM_CASES, ids=["http-legacy", "http-auto", "sse"])
def test_sigterm_lets_calls_in_flight_finish_answers_the_rest_and_exits_0(
    transport: str, mode: str, sec_upstream: Upstream, sigterm_servers: dict[tuple[str, str], HttpServer]
) -> None:
    """20 stream_complete calls in flight; SIGTERM; then the upstream lets 19 finish and one hangs.

    The 19 must end with their full text, the hung one with a clear error once
    the grace period is over, and the process must exit 0 soon after.
    """
    server = sigterm_servers[(transport, mode)]
    session: Session | None = None
    with sec_upstream._lock:  # nothing left over from another test
        sec_upstream._script.clear()
    sec_upstream.script(*[Reply.stream(["first half, ", "second half"], hold_after=1)] * (CALLS - 1), Reply.hang())
    try:
        server.wait_ready()
        session = Session(authed_target(server, SIGTERM_TOKEN), mode)  # legacy http: with a standing GET stream
        before = len(sec_upstream.chat_requests())

        async def go(c: Client) -> tuple[list[Any], float, float]:
            outcomes: list[Any] = [None] * CALLS
            started = [anyio.Event() for _ in range(CALLS)]
            # The client checks each result against the tool's output schema, and lists the
            # tools to learn it if it has not yet: done now, as no new request can reach a
            # server that is shutting down (its listening socket is closed).
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS

            async def one(i: int) -> None:
                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        started[i].set()

                try:
                    outcomes[i] = await c.call_tool("stream_complete", {"prompt": f"call {i}"},
                                                    progress_callback=on_progress)
                except MCPError as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(one, i)
                # Every call is in flight: all 20 reached the upstream, and the 19 streams
                # have sent their first chunk (so each is held, waiting for release()).
                with anyio.fail_after(60):
                    while (
                        len(sec_upstream.chat_requests()) - before < CALLS
                        or sum(e.is_set() for e in started) < CALLS - 1
                    ):
                        await anyio.sleep(0.02)  # polling counters: no single event covers 20 calls
                signalled = time.monotonic()
                server.signal_stop()
                # Released once the server has counted its calls in flight: released sooner, a
                # stream could finish between the signal and the count.
                with anyio.fail_after(30):
                    while "shutting down:" not in server.stderr():
                        await anyio.sleep(0.02)  # the server's log is the only sign: polled
                sec_upstream.release()
            return outcomes, signalled, time.monotonic()

        outcomes, signalled, all_ended = session.run(go, timeout=60 + GRACE_S + 30)
        rc = wait_exit(server.proc, GRACE_S + 20)
        exited = time.monotonic()
    finally:
        server.terminate()  # at once if it has exited; the log files are closed
        if session is not None:
            session.close()  # the server is gone: whatever closing raises is expected
    log = server.stderr()
    assert rc == 0, log
    assert "Traceback" not in log, log

    finished = [o for o in outcomes if not isinstance(o, MCPError)]
    failed = [o for o in outcomes if isinstance(o, MCPError)]
    assert len(finished) == CALLS - 1, outcomes
    for result in finished:
        assert not result.is_error, text_of(result)
        assert text_of(result) == "first half, second half"
    assert len(failed) == 1, outcomes
    assert "shut down" in str(failed[0]) and "grace period" in str(failed[0]), failed[0]
    # The hung call was answered once the grace period was over, not before and not much later.
    assert GRACE_S - 0.5 <= all_ended - signalled <= GRACE_S + 10, all_ended - signalled
    assert exited - signalled <= GRACE_S + 15, exited - signalled
    assert f"shutting down: {CALLS} call(s) in flight" in log
    assert "over: 1 call(s) answered with an error" in log


# ---------------------------------------------------------------------------
# Settings of the HTTP surface (in-process)
# ---------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert s.auth_tokens() == ()
    assert s.max_body_bytes == 4 * 1024 * 1024
    assert s.shutdown_grace_s == 10.0
    assert s.allowed_hosts == () and s.allowed_origins == ()
    assert s.allow_unauthenticated is False


def test_tokens_from_the_variable_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# a comment\n\n  file-token-1  \nfile-token-2\nshared-token\n")
    environ = {"HIVE_MCP_AUTH_TOKEN": " env-token-1 , shared-token,,", "HIVE_MCP_AUTH_TOKEN_FILE": str(path)}
    s = load_settings(environ=environ, cwd=tmp_path)
    assert s.auth_tokens() == ("env-token-1", "shared-token", "file-token-1", "file-token-2")
    assert "env-token-1" not in repr(s) and "env-token-1" not in str(s)


@pytest.mark.parametrize(
    ("environ", "fragments"),
    [
        ({"HIVE_MCP_AUTH_TOKEN_FILE": "/no/such/file"}, ["HIVE_MCP_AUTH_TOKEN_FILE", "/no/such/file"]),
        ({"HIVE_MCP_AUTH_TOKEN": " , "}, ["HIVE_MCP_AUTH_TOKEN", "no token"]),
        ({"HIVE_MCP_AUTH_TOKEN": "ok-token,bad tökén"}, ["HIVE_MCP_AUTH_TOKEN", "token 2"]),
    ],
)
def test_bad_tokens_are_one_line_errors_that_never_echo_a_token(
    tmp_path: Path, environ: dict[str, str], fragments: list[str]
) -> None:
    s = load_settings(environ=environ, cwd=tmp_path)
    with pytest.raises(SettingsError) as info:
        s.auth_tokens()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert "ok-token" not in message and "tökén" not in message


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# nothing but comments\n\n")
    with pytest.raises(SettingsError, match="no token"):
        load_settings(environ={"HIVE_MCP_AUTH_TOKEN_FILE": str(path)}, cwd=tmp_path).auth_tokens()


def test_allowed_hosts_and_origins_from_environment_and_flags(tmp_path: Path) -> None:
    environ = {"HIVE_MCP_ALLOWED_HOSTS": "a.example, b.example:8443", "HIVE_MCP_ALLOWED_ORIGINS": "https://a.example"}
    s = load_settings(environ=environ, cwd=tmp_path)
    assert s.allowed_hosts == ("a.example", "b.example:8443")
    assert s.allowed_origins == ("https://a.example",)
    flags = {"allowed_hosts": ["c.example", "d.example,e.example"], "allowed_origins": None}
    s = load_settings(flags, environ=environ, cwd=tmp_path)
    assert s.allowed_hosts == ("c.example", "d.example", "e.example")  # flags win over the environment
    assert s.allowed_origins == ("https://a.example",)


def test_transport_security_settings_for_a_bind(tmp_path: Path) -> None:
    from hive_mcp.http import transport_security_settings

    def settings(**kw: Any) -> Settings:
        return Settings(dump_dir=tmp_path, transport="http", **kw)

    local = transport_security_settings(settings(allowed_hosts=("mcp.example", "[::2]:9", "x.example:*")))
    assert local.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*", "mcp.example", "mcp.example:*", "[::2]:9", "x.example:*"} <= set(
        local.allowed_hosts
    )
    assert not any(h.startswith("10.") for h in local.allowed_hosts)
    remote = transport_security_settings(settings(host="10.0.0.5", port=9000, allowed_origins=("https://a.example/",)))
    assert remote.enable_dns_rebinding_protection
    assert "10.0.0.5:9000" in remote.allowed_hosts
    assert "http://10.0.0.5:9000" in remote.allowed_origins and "https://a.example" in remote.allowed_origins
    # A wildcard bind adds no name of its own (the command refuses one without --allowed-host): only those given.
    wildcard = transport_security_settings(settings(host="0.0.0.0", port=9000, allowed_hosts=("mcp.example",)))
    assert set(wildcard.allowed_hosts) == {"127.0.0.1:*", "localhost:*", "[::1]:*", "mcp.example", "mcp.example:*"}
    assert f"{socket.gethostname()}:9000" not in wildcard.allowed_hosts


def test_cli_refusal_happens_before_litellm_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hive_mcp.cli import main\n"
        "rc = main(['--transport', 'sse', '--host', '0.0.0.0'])\n"
        "print(rc, 'litellm' in sys.modules)\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.stdout.strip().splitlines()[-1] == "2 False", proc.stderr


def test_the_allow_list_a_bind_gets(tmp_path: Path) -> None:
    from hive_mcp.exposure import allowed_models, exposure_problem

    def settings(**kw: Any) -> Settings:
        return Settings(dump_dir=tmp_path, model="openai/gpt-[x]*?", **kw)

    assert allowed_models(settings(transport="http")) == ()  # loopback: any model, as before
    assert allowed_models(settings(transport="stdio", host="0.0.0.0")) == ()  # stdio binds nothing
    only = allowed_models(settings(transport="sse", host="10.0.0.5"))
    assert only == ("openai/gpt-[[]x][*][?]",)  # the default model's name, matched literally
    from hive_mcp.limits import Limits

    limits = Limits(allowed_models=only)
    assert limits.model_allowed("openai/gpt-[x]*?")
    assert not limits.model_allowed("openai/gpt-x-anything?")
    assert allowed_models(settings(transport="http", host="0.0.0.0", allowed_models=("a/*",))) == ("a/*",)
    # A wildcard bind needs --allowed-host once it is authenticated (or told to serve without).
    assert "--allowed-host" in (exposure_problem(settings(transport="http", host="::"), ("tok",)) or "")
    assert exposure_problem(settings(transport="http", host="::", allowed_hosts=("h",)), ("tok",)) is None
    assert exposure_problem(settings(transport="http", host="10.0.0.5"), ("tok",)) is None


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
