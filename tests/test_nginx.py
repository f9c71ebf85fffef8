"""deploy/nginx.conf works as written: it passes `nginx -t`, and an MCP call goes through it to a real
hive-mcp. nginx runs from the test's own prefix (pid, logs and temp paths under tmp_path), so it
needs no root; the test skips where no nginx binary is installed (.ci/tools.sh installs Debian's).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from harness.processes import ROOT, free_port
from tests.conftest import MODEL
from tests.servers import HttpServer, Session, bearer, server_env
from tests.clients import text_of
from harness.upstream import Reply, Upstream

CONF = ROOT / "deploy" / "nginx.conf"
TOKEN = "tok-nginx-0123456789abcdef0123"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)")


def as_run_here(text: str, tmp: Path, *, listen: int, upstream: int) -> str:
    """The file with the test's ports, and its logs and temp files under `tmp`; nothing else changes."""
    text, n_listen = re.subn(r"^(\s*)listen 8080;", rf"\g<1>listen 127.0.0.1:{listen};", text, flags=re.M)
    text, n_server = re.subn(r"server 127\.0\.0\.1:8765;", f"server 127.0.0.1:{upstream};", text)
    assert (n_listen, n_server) == (1, 1), "deploy/nginx.conf no longer has one `listen 8080` and one upstream"
    own = "".join(
        f"    {name}_temp_path {tmp / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ) + f"    access_log {tmp / 'access.log'};\n"
    return text.replace("http {\n", "http {\n" + own, 1)


def nginx(tmp: Path, conf: Path, *args: str) -> list[str]:
    return [str(NGINX), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log"),
            "-g", f"pid {tmp / 'nginx.pid'};", *args]


@needs_nginx
def test_the_file_passes_nginx_t_as_written(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(as_run_here(CONF.read_text(), tmp_path, listen=free_port(), upstream=8765))
    proc = subprocess.run(nginx(tmp_path, conf, "-t"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


def test_the_file_carries_what_the_server_needs() -> None:
    text = CONF.read_text()
    live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # not the comments
    assert re.search(r"^http \{", live, flags=re.M)
    assert "proxy_set_header Host $http_host;" in live and "$host;" not in live
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in live
    assert "proxy_buffering off;" in live
    assert re.search(r"upstream hive_mcp \{[^}]*keepalive \d+;", live)
    assert 'proxy_set_header Connection "";' in live and "proxy_http_version 1.1;" in live
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", live)[1])
    assert timeout > 600  # HIVE_MCP_DEADLINE_S's default
    assert "ssl_certificate" not in live and "# server {\n    #     listen 443 ssl;" in text  # TLS: commented


def test_the_readme_shows_the_file_as_it_is() -> None:
    blocks = re.findall(r"```nginx\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    text = CONF.read_text()
    for block in blocks:
        assert block in text, block


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[HttpServer, str, Upstream]]:
    """hive-mcp over HTTP with a token, and nginx in front of it with the repository's file."""
    with Upstream() as upstream:
        env = server_env(upstream, tmp_path / "dumps", api_key=True)
        env["HIVE_MCP_AUTH_TOKEN"] = TOKEN
        server = HttpServer("http", env, tmp_path / "hive", "behind-nginx")
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(as_run_here(CONF.read_text(), tmp_path, listen=port, upstream=server.port))
        proxy = subprocess.Popen(nginx(tmp_path, conf, "-g", "daemon off;"), stderr=subprocess.PIPE, text=True)
        try:
            server.wait_loaded()  # the call is bounded as a call, not as litellm's import
            _wait_listening(proxy, port, tmp_path)
            yield server, f"http://127.0.0.1:{port}", upstream
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
            assert server.terminate() == 0, server.stderr()


def _wait_listening(proxy: subprocess.Popen[str], port: int, tmp: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            pytest.fail(f"nginx exited with {proxy.returncode}: {(tmp / 'error.log').read_text(errors='replace')}")
        try:
            httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.05)  # polling a port: there is no event to wait on
    pytest.fail("nginx is not listening after 30 s")


@needs_nginx
def test_an_mcp_call_goes_through_nginx(behind_nginx: tuple[HttpServer, str, Upstream]) -> None:
    server, base, upstream = behind_nginx
    upstream.script(Reply.text("through nginx"))
    assert httpx2.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx2.post(f"{base}/mcp", json={}, timeout=10).status_code == 401  # the token is still asked for

    @asynccontextmanager
    async def target() -> AsyncIterator[Any]:
        async with httpx2.AsyncClient(headers=bearer(TOKEN), timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            async with streamable_http_client(f"{base}/mcp", http_client=http) as streams:
                yield streams

    session = Session(target, "legacy")
    try:

        async def call(c: Client) -> Any:
            return await c.call_tool("complete", {"prompt": "hi", "model": MODEL})

        result = session.run(call)
    finally:
        session.close()
    assert not result.is_error, text_of(result)
    assert "through nginx" in text_of(result)
