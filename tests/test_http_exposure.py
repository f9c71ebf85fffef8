"""Serving the network, against `python -m hive_mcp --transport http|sse` as a subprocess and in process.

A bind that is not loopback refuses to start without a token, unless told to
serve unauthenticated (then it warns, and accepts its own address as Host); a
wildcard bind needs --allowed-host; an exposed server serves only the default
model unless HIVE_MCP_ALLOWED_MODELS names others. The refusal comes before
litellm is imported; the model allow-list a bind gets is checked in process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from hive_mcp.settings import Settings
from tests.conftest import MODEL
from tests.http_access import HTTP_TOKENS, MCP_HEADERS, TRANSPORTS, raw
from tests.servers import HttpServer, Session, authed_target, server_env
from tests.clients import text_of
from harness.processes import INITIALIZE, ROOT
from harness.upstream import Reply, Upstream


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
    finally:
        rc = server.terminate()
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
        server.wait_loaded()  # the calls are bounded as calls, not as litellm's import
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
    finally:
        rc = server.terminate()
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
        server.wait_loaded()  # the calls are bounded as calls, not as litellm's import
        sec_upstream.script(Reply.text("from the other model"))
        session = Session(authed_target(server, HTTP_TOKENS[0]), "legacy")
        try:
            result = session.run(lambda c: c.call_tool("complete", {"prompt": "hello", "model": OTHER_MODEL}))
        finally:
            session.close()
        assert not result.is_error, text_of(result)
        assert text_of(result) == "from the other model"
    finally:
        server.terminate()
    assert "only the default model" not in server.stderr()


# ---------------------------------------------------------------------------
# In process: when the refusal comes, and the allow-list a bind gets
# ---------------------------------------------------------------------------


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
