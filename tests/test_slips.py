"""One clear line for every slip a newcomer makes: a port in use, a misspelled flag, a directory
given as the config, a `.env` line that does not parse, a stdin line that is not JSON, a state URL
that cannot be used (its password never shown), a hive home that cannot be a directory, a `.env`
or config file that is not UTF-8.

Each runs the real command as a subprocess: what a person sees on stderr is the behaviour.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import INITIALIZE, ask_stdio, child_env, free_port

SETTLE_S = 90.0  # a server imports mcp (and, serving, litellm in the background) on a loaded machine


def hive(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", *args],
        cwd=cwd,
        env=child_env(**{"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true",
                         "HIVE_HOME": str(cwd / "home"), **env}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SETTLE_S,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hive-mcp: error: ")
    return lines[0]


@pytest.mark.parametrize("args", [("--transport", "http"), ("--transport", "sse"),
                                  ("--transport", "http", "--workers", "2")], ids=["http", "sse", "workers"])
def test_a_port_in_use_is_one_line_and_exit_2_with_nothing_claiming_to_serve(args: tuple[str, ...],
                                                                              tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = hive(*args, "--port", str(port), cwd=tmp_path)
    line = one_error_line(proc)
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert "serving" not in proc.stderr and "startup complete" not in proc.stderr


@pytest.mark.parametrize("args", [("--transport", "stdio"), ("--transport", "http"),
                                  ("--transport", "http", "--workers", "2")], ids=["stdio", "http", "workers"])
def test_a_metrics_port_in_use_is_one_line_naming_it_and_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = hive(*args, "--port", str(free_port()), "--metrics-port", str(port), cwd=tmp_path)
    line = one_error_line(proc)
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert "--metrics-port (HIVE_MCP_METRICS_PORT)" in line
    assert "serving" not in proc.stderr and "startup complete" not in proc.stderr


@pytest.mark.parametrize("args", [("--transport", "http"), ("--transport", "sse"),
                                  ("--transport", "http", "--workers", "2")], ids=["http", "sse", "workers"])
def test_a_metrics_port_equal_to_the_port_is_one_line_naming_both_and_exit_2(args: tuple[str, ...],
                                                                             tmp_path: Path) -> None:
    port = free_port()
    proc = hive(*args, "--port", str(port), "--metrics-port", str(port), cwd=tmp_path)
    line = one_error_line(proc)
    assert "--metrics-port (HIVE_MCP_METRICS_PORT)" in line and "--port (HIVE_MCP_PORT)" in line and str(port) in line
    assert "serving" not in proc.stderr and "metrics at" not in proc.stderr


def test_a_misspelled_flag_with_a_value_is_named_with_the_close_one(tmp_path: Path) -> None:
    line = one_error_line(hive("--prot", "8000", cwd=tmp_path))
    assert "--prot" in line and "--port" in line
    assert "invalid choice" not in line


def test_an_unknown_flag_far_from_any_is_named_alone(tmp_path: Path) -> None:
    line = one_error_line(hive("--zzzzzz", "1", cwd=tmp_path))
    assert "--zzzzzz" in line and "did you mean" not in line


def test_a_directory_as_the_config_says_it_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    line = one_error_line(hive("--config", "conf", cwd=tmp_path))
    assert "conf" in line and "is a directory" in line and "no such file" not in line


def test_a_dotenv_line_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("HIVE_MCP_MODEL=openai/gpt-4o-mini\nthis line is not an assignment\n")
    # `usage` reads the .env and answers at once: no server needed to see the warning.
    proc = hive("--env-file", str(env_file), "usage", "--json", cwd=tmp_path)
    warnings = [line for line in proc.stderr.splitlines() if "line 2" in line]
    assert len(warnings) == 1, proc.stderr
    assert str(env_file) in warnings[0]


def test_stdin_lines_that_are_not_json_are_logged_once_with_a_length_never_the_content(tmp_path: Path) -> None:
    secret_ish = "hello this is not json sk-notakey"
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    lines = [json.dumps(INITIALIZE), secret_ish, "", "again not json", json.dumps(ping)]
    replies, code, stderr = ask_stdio(
        [sys.executable, "-m", "hive_mcp", "--log-level", "INFO"], lines, {1, 2}, cwd=tmp_path, timeout=SETTLE_S,
        env=child_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true", HIVE_HOME=str(tmp_path / "home"),
                      HIVE_MCP_API_BASE="http://127.0.0.1:9/v1"),
    )  # fmt: skip
    assert code == 0, stderr
    assert "result" in replies[2]  # the bad lines did not stop the session
    warnings = [line for line in stderr.splitlines() if " WARNING " in line and "not JSON" in line]
    assert len(warnings) == 1, stderr
    assert f"{len(secret_ish)} bytes" in warnings[0]  # the first only: a client that writes garbage floods nothing
    assert "sk-notakey" not in stderr and "again not json" not in stderr


COMMANDS = {"serve": (), "usage": ("usage",), "conversations": ("conversations", "list"), "dumps": ("dumps", "list")}
"""Every command that reads the settings: each must refuse a bad one the same way."""
PASSWORD = "S3CRETPW"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("url", [
    f"reddis://:{PASSWORD}@127.0.0.1:6379/0", f"http://user:{PASSWORD}@redis.internal:6379/0",
    f"redis://:{PASSWORD}@[::1/0", f"redis://:{PASSWORD}@127.0.0.1:notaport/0", f"redis://:{PASSWORD}@127.0.0.1:99999/0",
    f"redis://:{PASSWORD}@127.0.0.1:6379/0?db=x", f"redis://:{PASSWORD}@127.0.0.1:6379/0?dbb=1",
])  # fmt: skip
def test_a_bad_state_url_is_one_line_naming_it_never_its_password(url: str, command: str, tmp_path: Path) -> None:
    proc = hive(*COMMANDS[command], cwd=tmp_path, HIVE_MCP_STATE_URL=url)
    line = one_error_line(proc)
    assert line.startswith("hive-mcp: error: HIVE_MCP_STATE_URL: "), line
    assert PASSWORD not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("home", ["a file", "under a file", "an unknown user's"])
def test_a_hive_home_that_cannot_be_a_directory_is_one_line_naming_it(home: str, command: str, tmp_path: Path) -> None:
    (tmp_path / "hive-home").write_text("")
    value = {"a file": str(tmp_path / "hive-home"), "under a file": str(tmp_path / "hive-home" / "hive"),
             "an unknown user's": "~no-such-user-of-hive/hive"}[home]  # fmt: skip
    line = one_error_line(hive(*COMMANDS[command], cwd=tmp_path, HIVE_HOME=value))
    assert line.startswith("hive-mcp: error: HIVE_HOME: ") and value in line, line
    assert not (tmp_path / "hive-home").is_dir()


LATIN_1 = "HIVE_MCP_MODEL=openai/gpt-4o-mini\nHIVE_MCP_LOG_LEVEL=caf\xe9\n".encode("latin-1")


@pytest.mark.parametrize("command", [*COMMANDS, "--env-file"])
def test_a_dotenv_that_is_not_utf8_is_one_line_naming_the_file_and_line(command: str, tmp_path: Path) -> None:
    env_file = tmp_path / ("settings.env" if command == "--env-file" else ".env")
    env_file.write_bytes(LATIN_1)
    args = ("--env-file", str(env_file), "usage") if command == "--env-file" else COMMANDS[command]
    line = one_error_line(hive(*args, cwd=tmp_path))
    assert f"{env_file}: line 2: " in line and "UTF-8" in line and "0xe9" in line, line


@pytest.mark.parametrize("command", ["serve", "usage"])
def test_a_config_that_is_not_utf8_is_one_line_naming_the_file_and_line(command: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes("model_list:\n  - model_name: caf\xe9\n    litellm_params: {model: openai/gpt-4o-mini}\n"
                       .encode("latin-1"))
    line = one_error_line(hive(*COMMANDS[command], cwd=tmp_path, HIVE_MCP_CONFIG=str(config)))
    assert f"{config}: line 2: " in line and "UTF-8" in line and "0xe9" in line, line
