"""The commands beside serving (`dumps`, `conversations`, `usage`) as one command line: the top-level flags
apply to each and `--limit` means the same in each. Each runs the real command as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from harness.processes import child_env
from tests.conftest import sample_dump
from tests.conftest_valkey import answer, started, turn, user

HUGE = "99999999999999999999"  # past SQLite's INTEGER and any C long


def hive(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", *args], env=child_env(HIVE_HOME=str(home), **env), cwd=home.parent,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hive-mcp") and ": error: " in lines[0]
    return lines[0]


def conversations(home: Path, *costs: float | None) -> list[str]:
    """One conversation of one turn per cost (None: unpriced) in the hive home's store, oldest first."""

    async def write() -> list[str]:
        async with SQLiteStore(home / "hive-mcp.sqlite3") as store:
            ids = []
            for cost in costs:
                thread = await store.create(owner="local", messages=[user("hi"), answer("hello")], turn=turn(cost=cost))
                ids.append(thread.id)
            return ids

    return anyio.run(write)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"

# -- --limit ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("dumps", "list"), ("conversations", "list")], ids=["dumps", "conversations"])
@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5"])
def test_a_bad_limit_is_one_line_naming_it_and_exit_2(home: Path, command: tuple[str, ...], value: str) -> None:
    line = one_error_line(hive(home, *command, "--limit", value))
    assert "--limit" in line and value in line


def test_a_huge_limit_lists_everything_in_each_command(home: Path) -> None:
    ids = conversations(home, 0.002, 0.001)
    dump_id = DumpStore(home / "failed_requests").write(sample_dump(datetime.now(UTC)))
    for command, wanted in ((("conversations", "list"), ids), (("dumps", "list"), [dump_id])):
        proc = hive(home, *command, "--limit", HUGE)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert sorted(line.split()[-1] for line in proc.stdout.splitlines()[1:]) == sorted(wanted)


def test_conversations_list_pages_past_one_store_page(home: Path) -> None:
    async def write() -> None:
        async with SQLiteStore(home / "hive-mcp.sqlite3") as store:
            for _ in range(205):
                await started(store)

    anyio.run(write)
    proc = hive(home, "conversations", "list", "--limit", "204")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 205  # the header and 204 rows
    assert "more exist" in proc.stderr


# -- the top-level flags -----------------------------------------------------------------------------------------


def test_config_before_usage_brings_its_budgets(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "budget.yaml"
    config.write_text("model_list:\n  - model_name: fast\n    litellm_params: {model: openai/gpt-4o-mini, "
                      "api_key: sk-fake}\nhive_mcp:\n  budgets:\n    day: 7\n")  # fmt: skip
    proc = hive(home, "--config", str(config), "usage")
    assert proc.returncode == 0, proc.stderr
    assert any(line.split()[:2] == ["all:day", "7.00"] for line in proc.stdout.splitlines()), proc.stdout


def test_config_before_dumps_names_their_directory(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    dump_id = DumpStore(elsewhere).write(sample_dump(datetime.now(UTC)))
    config = tmp_path / "dumps.yaml"
    config.write_text("model_list:\n  - model_name: fast\n    litellm_params: {model: openai/gpt-4o-mini, "
                      f"api_key: sk-fake}}\nhive_mcp:\n  dump_dir: {elsewhere}\n")  # fmt: skip
    proc = hive(home, "--config", str(config), "dumps", "list")
    assert proc.returncode == 0, proc.stderr
    assert dump_id is not None and dump_id in proc.stdout


@pytest.mark.parametrize("command", [("usage",), ("conversations", "list"), ("dumps", "list")],
                         ids=["usage", "conversations", "dumps"])  # fmt: skip
@pytest.mark.parametrize(("flags", "named"), [
    (("--config", "/nonexistent.yaml"), "/nonexistent.yaml"),
    (("--port", "abc"), "--port"),
    (("--log-level", "LOUD"), "--log-level"),
    (("--metrics-port", "0"), "--metrics-port"),
], ids=["config", "port", "log-level", "metrics-port"])  # fmt: skip
def test_a_bad_top_level_flag_before_a_command_is_one_line_and_exit_2(
    home: Path, command: tuple[str, ...], flags: tuple[str, ...], named: str
) -> None:
    line = one_error_line(hive(home, *flags, *command))
    assert named in line
