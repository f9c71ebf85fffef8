"""The `hive-mcp` command line: --help, one-line errors, and `dumps list|show|purge`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hive_mcp.cli import PROVIDER_KEY_VARS, main, parse_duration, parse_since
from hive_mcp.dumps import DumpStore, FailureDump
from tests.conftest import sample_dump
from hive_mcp.settings import SETTINGS_FIELDS

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m hive_mcp ARGS` in a clean environment (no HIVE_MCP_* from the machine)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_MCP_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hive-mcp") and ": error: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs: no stray .env, no HIVE_MCP_* from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HIVE_MCP_"):
            monkeypatch.delenv(name)


def make_dump(age: timedelta, *, error_type: str = "rate_limit", model: str = "openai/gpt-4o-mini") -> FailureDump:
    return sample_dump(NOW - age, error_type=error_type, model=model, content=f"hello from {error_type} {age}")


@pytest.fixture
def dumps(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Four dumps, written through the real store: name -> id."""
    directory = tmp_path / "dumps"
    store = DumpStore(directory)
    ids = {
        "old": store.write(make_dump(timedelta(days=3), error_type="auth")),
        "hours": store.write(make_dump(timedelta(hours=5))),
        "recent": store.write(make_dump(timedelta(minutes=10), model="anthropic/claude-x")),
        "newest": store.write(make_dump(timedelta(minutes=1), error_type="transient")),
    }
    assert all(ids.values())
    return directory, ids  # type: ignore[return-value]


def table_ids(out: str) -> list[str]:
    lines = out.strip().splitlines()
    assert lines[0].split()[0] == "TIME"
    return [line.split()[-1] for line in lines[1:]]


# ---------------------------------------------------------------------------
# --help and argument errors (subprocess: what a person sees)
# ---------------------------------------------------------------------------


def test_help_lists_every_option_and_environment_variable(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for flag in ("--transport", "--host", "--port", "--model", "--api-base", "--dump-dir", "--heartbeat",
                 "--log-level", "--env-file", "--allow-unauthenticated", "--allowed-host", "--allowed-origin"):
        assert flag in out, flag
    for spec in SETTINGS_FIELDS:
        assert spec.env in out, spec.env
        if spec.flag:
            assert spec.flag in out
    for name, _ in PROVIDER_KEY_VARS:
        assert name in out, name
    for needle in ("HIVE_MCP_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", ".env", "stdio", "http", "sse",
                   "/mcp", "LITELLM_LOCAL_MODEL_COST_MAP", "dumps", "HIVE_MCP_AUTH_TOKEN", "HIVE_MCP_AUTH_TOKEN_FILE",
                   "Authorization: Bearer", "/healthz", "HIVE_MCP_MAX_BODY_BYTES", "HIVE_MCP_SHUTDOWN_GRACE_S",
                   "HIVE_MCP_ALLOWED_HOSTS", "HIVE_MCP_ALLOWED_ORIGINS"):
        assert needle in out, needle
    assert "--api-key" not in out
    assert "--auth-token" not in out  # like the API key: never a flag


def test_help_describes_each_setting_once_and_starts_with_an_example(tmp_path: Path) -> None:
    out = run_cli("--help", cwd=tmp_path).stdout
    for spec in SETTINGS_FIELDS:
        beside_its_flag = out.count(f"[{spec.env}]")
        on_its_own = len(re.findall(rf"^  {spec.env}  ", out, flags=re.M))  # an entry: NAME, two spaces, text
        assert beside_its_flag + on_its_own == 1, (spec.env, beside_its_flag, on_its_own)
        if spec.flag:
            assert beside_its_flag == 1, f"{spec.env} belongs beside {spec.flag}"
    head = out.split("\noptions:", 1)[0]
    assert re.search(r"^  (HIVE_MCP_\w+=\S+ )*hive-mcp ", head, flags=re.M), "an example command before the options"
    for name in ("complete", "stream_complete", "list_models", "list_conversations", "list_failed_requests",
                 "dashboard", "/dashboard"):
        assert re.search(rf"(?<![\w/]){re.escape(name)}\b", head), name
    # It was 228 with every setting twice; 150 is about one line per setting.
    assert len(out.splitlines()) <= 150, len(out.splitlines())


def test_dumps_help_lists_actions_and_filters(tmp_path: Path) -> None:
    out = run_cli("dumps", "--help", cwd=tmp_path).stdout
    for action in ("list", "show", "purge"):
        assert action in out
    out = run_cli("dumps", "list", "--help", cwd=tmp_path).stdout
    for flag in ("--error-type", "--model", "--since", "--limit"):
        assert flag in out
    assert "--older-than" in run_cli("dumps", "purge", "--help", cwd=tmp_path).stdout


def test_cli_paths_that_do_not_serve_never_import_litellm(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hive_mcp.cli import main\n"
        f"rc = main(['dumps', 'list', '--dump-dir', {str(tmp_path)!r}])\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(rc, 'litellm' in sys.modules, 'mcp' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 False False"


def test_litellm_logs_go_to_stderr_once_and_never_to_stdout(tmp_path: Path) -> None:
    # litellm's own handler writes records below WARNING to stdout: the protocol stream under stdio.
    code = (
        "import logging\n"
        "import litellm\n"
        "from hive_mcp.logs import configure_logging, route_litellm_logs\n"
        "configure_logging('DEBUG')\n"
        "route_litellm_logs('DEBUG')\n"
        "logging.getLogger('LiteLLM').info('info-from-litellm')\n"
        "logging.getLogger('LiteLLM Router').warning('warning-from-litellm')\n"
        "route_litellm_logs('INFO')\n"
        "logging.getLogger('LiteLLM').info('hidden-at-info')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOG"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "info-from-litellm" not in proc.stdout and "warning-from-litellm" not in proc.stdout
    assert proc.stderr.count("info-from-litellm") == 1
    assert proc.stderr.count("warning-from-litellm") == 1
    assert "hidden-at-info" not in proc.stderr + proc.stdout


def test_api_key_flag_is_refused(tmp_path: Path) -> None:
    proc = run_cli("--api-key", "sk-should-not-be-here", cwd=tmp_path)
    assert_one_line_error(proc, "HIVE_MCP_API_KEY", "ps")
    assert "sk-should-not-be-here" not in proc.stderr
    assert_one_line_error(run_cli("--api-key=sk-x", cwd=tmp_path), "HIVE_MCP_API_KEY")


def test_invalid_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--port", "http", cwd=tmp_path), "--port", "'http'")
    assert_one_line_error(run_cli(cwd=tmp_path, env={"HIVE_MCP_PORT": "99999"}), "HIVE_MCP_PORT", "65535")
    (tmp_path / ".env").write_text("HIVE_MCP_TRANSPORT=websocket\n")
    assert_one_line_error(run_cli(cwd=tmp_path), "HIVE_MCP_TRANSPORT", ".env", "'websocket'")


def test_a_setting_past_its_upper_bound_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = run_cli(cwd=tmp_path, env={"HIVE_MCP_DUMP_MAX_AGE_DAYS": "1e300"})  # was a traceback at start-up
    assert_one_line_error(proc, "HIVE_MCP_DUMP_MAX_AGE_DAYS", "36500")


def test_bad_auth_token_settings_exit_2_with_one_line(tmp_path: Path) -> None:
    http = ("--transport", "http")
    missing = str(tmp_path / "missing-tokens")
    assert_one_line_error(run_cli(*http, cwd=tmp_path, env={"HIVE_MCP_AUTH_TOKEN_FILE": missing}),
                          "HIVE_MCP_AUTH_TOKEN_FILE", missing)
    (tmp_path / "empty").write_text("# no tokens yet\n")
    assert_one_line_error(run_cli(*http, cwd=tmp_path, env={"HIVE_MCP_AUTH_TOKEN_FILE": str(tmp_path / "empty")}),
                          "HIVE_MCP_AUTH_TOKEN_FILE", "no token")
    proc = run_cli(*http, cwd=tmp_path, env={"HIVE_MCP_AUTH_TOKEN": "good-token-123,bad token 456"})
    assert_one_line_error(proc, "HIVE_MCP_AUTH_TOKEN", "token 2")
    assert "good-token-123" not in proc.stderr and "456" not in proc.stderr
    proc = run_cli("--auth-token", "tok-on-the-command-line", cwd=tmp_path)
    assert_one_line_error(proc, "HIVE_MCP_AUTH_TOKEN", "ps")
    assert "tok-on-the-command-line" not in proc.stderr


def test_unknown_option_and_bad_choice_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--frobnicate", cwd=tmp_path), "--frobnicate")
    assert_one_line_error(run_cli("--transport", "tcp", cwd=tmp_path), "--transport")


# ---------------------------------------------------------------------------
# dumps list
# ---------------------------------------------------------------------------


def test_dumps_list_newest_first(dumps, capsys: pytest.CaptureFixture[str]) -> None:
    directory, ids = dumps
    assert main(["dumps", "list", "--dump-dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert table_ids(out) == [ids["newest"], ids["recent"], ids["hours"], ids["old"]]
    header = out.splitlines()[0].split()
    assert header == ["TIME", "ERROR", "OUTCOME", "ATTEMPTS", "MODEL", "SIZE", "ID"]
    row = next(line for line in out.splitlines() if ids["recent"] in line)
    assert "anthropic/claude-x" in row and "rate_limit" in row and "gave_up" in row


def test_dumps_list_filters(dumps, capsys: pytest.CaptureFixture[str]) -> None:
    directory, ids = dumps
    d = ["--dump-dir", str(directory)]

    assert main(["dumps", "list", "--error-type", "rate_limit", *d]) == 0
    assert table_ids(capsys.readouterr().out) == [ids["recent"], ids["hours"]]

    assert main(["dumps", "list", "--model", "anthropic/claude-x", *d]) == 0
    assert table_ids(capsys.readouterr().out) == [ids["recent"]]

    assert main(["dumps", "list", "--since", "1h", *d]) == 0
    assert table_ids(capsys.readouterr().out) == [ids["newest"], ids["recent"]]

    since = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert main(["dumps", "list", "--since", since, *d]) == 0
    assert table_ids(capsys.readouterr().out) == [ids["newest"], ids["recent"], ids["hours"]]

    assert main(["dumps", "list", "--limit", "2", *d]) == 0
    captured = capsys.readouterr()
    assert table_ids(captured.out) == [ids["newest"], ids["recent"]]
    assert "more" in captured.err


def test_dumps_list_uses_dump_dir_from_environment_and_ignores_unrelated_settings(
    dumps, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, ids = dumps
    monkeypatch.setenv("HIVE_MCP_DUMP_DIR", str(directory))
    monkeypatch.setenv("HIVE_MCP_PORT", "not-a-port")  # irrelevant to dumps: must not break them
    assert main(["dumps", "list"]) == 0
    assert len(table_ids(capsys.readouterr().out)) == 4


def test_dumps_list_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dumps", "list", "--dump-dir", str(tmp_path / "nothing")]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no failed requests" in captured.err


def test_dumps_list_bad_since(tmp_path: Path, dumps) -> None:
    directory, _ = dumps
    proc = run_cli("dumps", "list", "--since", "yesterday-ish", "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "--since", "yesterday-ish")


def test_dumps_list_bad_limit(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("dumps", "list", "--limit", "0", cwd=tmp_path), "--limit")


# ---------------------------------------------------------------------------
# dumps show
# ---------------------------------------------------------------------------


def test_dumps_show_prints_pretty_json(dumps, capsys: pytest.CaptureFixture[str]) -> None:
    directory, ids = dumps
    assert main(["dumps", "show", ids["hours"], "--dump-dir", str(directory)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["id"] == ids["hours"]
    assert data["messages"][0]["content"].startswith("hello from rate_limit")
    assert out.startswith("{\n  ")  # indented, for people
    assert data == json.loads(DumpStore(directory).read_text(ids["hours"]))


def test_dumps_show_bad_id_is_one_line_exit_2(tmp_path: Path, dumps) -> None:
    directory, ids = dumps
    proc = run_cli("dumps", "show", "../../etc/passwd", "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "not a dump id")
    missing = ids["old"][:-8] + "00000000"
    proc = run_cli("dumps", "show", missing, "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "no dump", missing)


# ---------------------------------------------------------------------------
# dumps purge
# ---------------------------------------------------------------------------


def test_dumps_purge_older_than(dumps, capsys: pytest.CaptureFixture[str]) -> None:
    directory, ids = dumps
    assert main(["dumps", "purge", "--older-than", "2h", "--dump-dir", str(directory)]) == 0
    assert "removed 2 dumps" in capsys.readouterr().out
    remaining = {s.id for s in DumpStore(directory).list().items}
    assert remaining == {ids["newest"], ids["recent"]}

    assert main(["dumps", "purge", "--all", "--dump-dir", str(directory)]) == 0
    assert "removed 2 dumps" in capsys.readouterr().out
    assert DumpStore(directory).count() == 0

    assert main(["dumps", "purge", "--all", "--dump-dir", str(directory)]) == 0
    assert "removed 0 dumps" in capsys.readouterr().out


def test_dumps_purge_without_a_scope_refuses_and_removes_nothing(tmp_path: Path, dumps) -> None:
    directory, _ = dumps
    proc = run_cli("dumps", "purge", "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "--all", "--older-than")
    assert DumpStore(directory).count() == 4


def test_dumps_purge_all_and_an_age_together_is_refused(tmp_path: Path, dumps) -> None:
    directory, _ = dumps
    proc = run_cli("dumps", "purge", "--all", "--older-than", "1d", "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "--all", "--older-than")
    assert DumpStore(directory).count() == 4


def _purge_on_a_terminal(tmp_path: Path, directory: Path, answer: bytes, *flags: str) -> tuple[int, str]:
    """`dumps purge FLAGS` with a pseudo-terminal as stdin, answering the question with `answer`."""
    import pty

    leader, follower = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_MCP_")}
    base["PYTHONPATH"] = str(ROOT)
    with os.fdopen(leader, "r+b", buffering=0) as term:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hive_mcp", "dumps", "purge", *flags, "--dump-dir", str(directory)],
            cwd=tmp_path, env=base, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        os.close(follower)
        if answer:
            term.write(answer)
        out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


@pytest.mark.parametrize(("answer", "left"), [(b"n\n", 4), (b"\n", 4), (b"y\n", 0)])
def test_dumps_purge_asks_on_a_terminal(tmp_path: Path, dumps, answer: bytes, left: int) -> None:
    directory, _ = dumps
    code, text = _purge_on_a_terminal(tmp_path, directory, answer, "--all")
    assert "delete 4 dumps" in text and "[y/N]" in text, text
    assert code == 0, text
    assert DumpStore(directory).count() == left


def test_dumps_purge_yes_skips_the_question_on_a_terminal(tmp_path: Path, dumps) -> None:
    directory, _ = dumps
    code, text = _purge_on_a_terminal(tmp_path, directory, b"", "--older-than", "2h", "--yes")
    assert code == 0, text
    assert "[y/N]" not in text and "removed 2 dumps" in text
    assert DumpStore(directory).count() == 2


def test_dumps_purge_bad_duration(tmp_path: Path, dumps) -> None:
    directory, _ = dumps
    proc = run_cli("dumps", "purge", "--older-than", "7 days", "--dump-dir", str(directory), cwd=tmp_path)
    assert_one_line_error(proc, "--older-than", "7 days")
    assert DumpStore(directory).count() == 4  # nothing removed


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1.5h", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 d", "-1d", "7days", "1h-", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_since() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now=now) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-20T08:00Z", now=now) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    local = parse_since("2026-11-20", now=now)
    assert local.tzinfo is not None and local.replace(tzinfo=None) == datetime(2026, 11, 20)
    with pytest.raises(ValueError, match="--since"):
        parse_since("last tuesday", now=now)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_moment_with_no_utc_time_is_a_value_error_naming_it(text: str) -> None:
    """Its offset puts it before year 1 or after 9999 in UTC."""
    with pytest.raises(ValueError, match="out of range"):
        parse_since(text).astimezone(UTC)


def test_every_flag_is_built_from_its_setting_and_reaches_it(tmp_path: Path) -> None:
    from hive_mcp.cli import build_parser
    from hive_mcp.settings import load_settings

    argv = {
        "--model": ["m"], "--api-base": ["http://x/v1"], "--dump-dir": [str(tmp_path)], "--transport": ["http"],
        "--host": ["10.0.0.1"], "--port": ["9"], "--heartbeat": ["2"], "--log-level": ["debug"],
        "--allow-unauthenticated": [], "--allowed-host": ["a", "--allowed-host", "b"],
        "--allowed-origin": ["https://o"], "--config": [str(tmp_path / "models.yaml")],
        "--workers": ["3"], "--stateless": [], "--force": [], "--metrics-port": ["9464"],
    }
    assert set(argv) == {spec.flag for spec in SETTINGS_FIELDS if spec.flag}  # no flag untested, none extra
    args = build_parser().parse_args([part for flag, values in argv.items() for part in (flag, *values)])
    s = load_settings({spec.field: getattr(args, spec.field) for spec in SETTINGS_FIELDS if spec.flag},
                      environ={}, cwd=tmp_path)
    assert s.config == tmp_path / "models.yaml"
    assert (s.model, s.api_base, s.dump_dir, s.transport, s.host, s.port, s.heartbeat_s, s.log_level) == (
        "m", "http://x/v1", tmp_path, "http", "10.0.0.1", 9, 2.0, "DEBUG"
    )
    assert (s.allow_unauthenticated, s.allowed_hosts, s.allowed_origins) == (True, ("a", "b"), ("https://o",))
    assert (s.workers, s.stateless, s.force, s.metrics_port) == (3, True, True, 9464)
    # Not given: None, so the environment (then .env, then the default) decides.
    unset = build_parser().parse_args([])
    assert all(getattr(unset, spec.field) is None for spec in SETTINGS_FIELDS if spec.flag)


@pytest.mark.parametrize("which", ["dump dir", "hive home"])
@pytest.mark.parametrize("problem", ["world-writable", "group-writable", "another user's"])
def test_an_unsafe_dump_or_state_directory_is_refused_and_left_as_it_is(
    tmp_path: Path, which: str, problem: str
) -> None:
    home, dumps = tmp_path / "home", tmp_path / "dumps"
    home.mkdir(mode=0o700)
    dumps.mkdir(mode=0o700)
    unsafe = dumps if which == "dump dir" else home
    mode = {"world-writable": 0o777, "group-writable": 0o770, "another user's": 0o700}[problem]
    os.chmod(unsafe, mode)
    if problem == "another user's":
        if os.geteuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        os.chown(unsafe, 12345, 12345)
    before = os.stat(unsafe)
    env = {"HIVE_HOME": str(home), "HIVE_MCP_DUMP_DIR": str(dumps), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = run_cli(cwd=tmp_path, env=env)
    assert_one_line_error(proc, str(unsafe), "other user" if problem == "another user's" else "writable")
    after = os.stat(unsafe)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)  # never changed


def test_a_private_dump_directory_of_ours_is_used(tmp_path: Path) -> None:
    from hive_mcp.home import private_dir, unsafe_dir

    (tmp_path / "ours").mkdir(mode=0o700)
    assert unsafe_dir(tmp_path / "ours") is None and unsafe_dir(tmp_path / "absent") is None
    private_dir(tmp_path / "new")
    assert oct(os.stat(tmp_path / "new").st_mode & 0o777) == oct(0o700)
    os.chmod(tmp_path / "ours", 0o757)
    with pytest.raises(PermissionError, match="writable"):
        private_dir(tmp_path / "ours")
