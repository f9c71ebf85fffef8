"""The commands beside serving (`dumps`, `conversations`, `usage`) as one command line: the top-level flags
apply to each, `--limit` means the same in each, a state store that does not answer is said to, a misspelled
flag is matched against the command's own, and an unpriced conversation reads as unpriced. Each runs the real
command as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.dumps.redis_store import RedisDumpStore
from hive_mcp.state_store import StateUnavailable
from harness.processes import child_env
from harness.valkey import ValkeyProcess
from tests.conftest import sample_dump
from tests.conftest_valkey import answer, started, turn, user, valkey_binary

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


# -- an unreachable state store --------------------------------------------------------------------------------------

PASSWORD = "cli-valkey-pw-0123456789"
WRONG = "cli-wrong-pw-9876543210"
COMMANDS = [("dumps", "list"), ("dumps", "show", "{id}"), ("dumps", "purge", "--all", "--yes"), ("usage",),
            ("conversations", "list")]  # fmt: skip


def unreachable(proc: subprocess.CompletedProcess[str], port: int) -> None:
    """One line naming HIVE_MCP_STATE_URL and the store (no password), exit 1, and no server's outage warning."""
    line = one_error_line(proc, 1)
    assert "HIVE_MCP_STATE_URL" in line and f"127.0.0.1:{port}" in line, line
    assert PASSWORD not in proc.stderr and WRONG not in proc.stderr


def test_every_command_says_when_the_state_store_cannot_be_reached(home: Path, tmp_path: Path) -> None:
    with ValkeyProcess(valkey_binary(), extra=("--requirepass", PASSWORD)) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        dump_id = RedisDumpStore(url, tmp_path / "server").write(sample_dump(datetime.now(UTC)))
        assert dump_id is not None
        listed = hive(home, "dumps", "list", HIVE_MCP_STATE_URL=url)
        assert listed.returncode == 0 and dump_id in listed.stdout, listed.stderr
        wrong = f"redis://:{WRONG}@127.0.0.1:{server.port}/0"
        for command in COMMANDS:
            unreachable(hive(home, *(a.format(id=dump_id) for a in command), HIVE_MCP_STATE_URL=wrong), server.port)
        assert dump_id in hive(home, "dumps", "list", HIVE_MCP_STATE_URL=url).stdout  # the purge removed nothing
        server.stop()
        for command in COMMANDS:
            unreachable(hive(home, *(a.format(id=dump_id) for a in command), HIVE_MCP_STATE_URL=url), server.port)


def test_the_command_line_dump_store_raises_rather_than_fall_back(tmp_path: Path) -> None:
    """A failure after the command's first PING (Redis gone mid-command) is still an error, not a local listing."""
    with ValkeyProcess(valkey_binary(), extra=("--requirepass", PASSWORD)) as server:
        wrong = f"redis://:{WRONG}@127.0.0.1:{server.port}/0"
        local = DumpStore(tmp_path / "local")
        assert local.write(sample_dump(datetime.now(UTC))) is not None
        store = RedisDumpStore(wrong, tmp_path / "local", degrade=False)
        for act in (store.list, store.count, lambda: store.read_text("20261207T122401392540Z.auth.x.0123abcd"),
                    lambda: store.purge(None)):  # fmt: skip
            with pytest.raises(StateUnavailable, match="HIVE_MCP_STATE_URL") as caught:
                act()
            assert WRONG not in str(caught.value)
        assert store.unlisted() is None  # no breaker opened: nothing for a server to degrade


# -- a misspelled flag ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "close"), [
    (("usage", "--sinse", "7d"), "--since"),
    (("dumps", "list", "--limt", "5"), "--limit"),
    (("conversations", "list", "--limt", "5"), "--limit"),
    (("--prot", "8000"), "--port"),
], ids=["usage", "dumps", "conversations", "serving"])  # fmt: skip
def test_a_misspelled_flag_is_matched_against_the_commands_own(home: Path, args: tuple[str, ...], close: str) -> None:
    line = one_error_line(hive(home, *args))
    assert line.endswith(f"did you mean {close}? (see --help)") or line.endswith(f"did you mean {close}?"), line


@pytest.mark.parametrize(("args", "foreign"), [
    (("usage", "--bogus"), "--host"),
    (("dumps", "list", "--prot", "1"), "--port"),
    (("conversations", "list", "--prot", "1"), "--port"),
], ids=["usage", "dumps", "conversations"])  # fmt: skip
def test_no_flag_the_command_refuses_is_suggested(home: Path, args: tuple[str, ...], foreign: str) -> None:
    line = one_error_line(hive(home, *args))
    assert args[-1] in line or args[-2] in line
    assert foreign not in line


def test_a_top_level_flag_after_the_command_says_where_it_goes(home: Path) -> None:
    line = one_error_line(hive(home, "usage", "--config", "x.yaml"))
    assert "--config" in line and "before" in line and "usage" in line


# -- unpriced conversations ------------------------------------------------------------------------------------------


def test_conversations_list_shows_an_unpriced_conversation_as_unpriced(home: Path) -> None:
    unpriced, priced = conversations(home, None, 0.25)

    async def mixed() -> str:
        async with SQLiteStore(home / "hive-mcp.sqlite3") as store:
            thread = await store.thread(priced)
            return (await store.append(thread.id, [user("more"), answer("MORE")], turn(cost=None),
                                       expected_tip=thread.tip)).id  # fmt: skip

    anyio.run(mixed)
    proc = hive(home, "conversations", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[-1]: line for line in proc.stdout.splitlines()[1:]}
    assert " unpriced " in rows[unpriced] and "0.000000" not in rows[unpriced]
    assert "0.250000 (1 unpriced)" in rows[priced]


@pytest.mark.parametrize("command", [("list",), ("show", "0" * 8), ("purge", "--all", "--yes")])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_dump_directory_that_cannot_be_one_is_one_line_naming_it(
    home: Path, tmp_path: Path, command: tuple[str, ...], where: str
) -> None:
    """As serving refuses it, not "no failed requests" (nor "removed 0 dumps") from a directory that is none."""
    afile = tmp_path / "afile"
    afile.write_text("")
    directory = afile if where == "a file" else afile / "dumps"
    line = one_error_line(hive(home, "dumps", command[0], "--dump-dir", str(directory), *command[1:]))
    assert "HIVE_MCP_DUMP_DIR" in line and str(directory) in line and "not a directory" in line, line


@pytest.mark.parametrize("command", [("conversations", "list"), ("usage", "--json")])
def test_a_hive_home_set_in_dotenv_is_where_every_command_reads(tmp_path: Path, command: tuple[str, ...]) -> None:
    """As for serving, which exports it: the stores a command reads are in that home, not in ~/.hive."""
    home = tmp_path / "elsewhere"
    [conversation] = conversations(home, 0.25)
    workdir, user_home = tmp_path / "work", tmp_path / "user"
    workdir.mkdir()
    user_home.mkdir()
    (workdir / ".env").write_text(f"HIVE_HOME={home}\n")
    env = {k: v for k, v in child_env(HOME=str(user_home)).items() if k != "HIVE_HOME"}
    proc = subprocess.run(
        [sys.executable, "-m", "hive_mcp", *command], env=env, cwd=workdir, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (user_home / ".hive").exists(), "a store was opened in ~/.hive"
    if command[0] == "conversations":
        assert conversation in proc.stdout, proc.stdout
