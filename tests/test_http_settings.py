"""The HTTP surface's settings, in process: the defaults, bearer tokens from
HIVE_MCP_AUTH_TOKEN and a token file (errors that never echo a token), allowed
hosts and origins from the environment and the flags, and the DNS-rebinding
allow-lists a bind gets.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from hive_mcp.settings import Settings, SettingsError, load_settings


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
    from hive_mcp.http.hosts import transport_security_settings

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
