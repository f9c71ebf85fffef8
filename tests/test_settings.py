"""Settings: flag > environment > .env > default, and nothing of the key leaks."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from hive_mcp.settings import SETTINGS_FIELDS, Settings, SettingsError, load_settings

KEY = "sk-settings-test-0123456789SECRET"


def write_env(directory: Path, text: str) -> Path:
    path = directory / ".env"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert s.model == "gpt-4o-mini"
    assert s.api_base is None and s.api_key is None
    assert s.transport == "stdio"
    assert (s.host, s.port) == ("127.0.0.1", 8765)
    assert s.heartbeat_s == 10.0
    assert s.dump_max_count == 500
    assert s.dump_max_bytes == 100 * 1024 * 1024
    assert s.dump_max_age == timedelta(days=30)
    assert s.log_level == "INFO"
    assert s.dump_dir == tmp_path / ".hive" / "failed_requests"
    assert s.env_file is None


def test_precedence_flag_over_env_over_dotenv_over_default(tmp_path: Path) -> None:
    write_env(
        tmp_path,
        "HIVE_MCP_MODEL=dotenv-model\nHIVE_MCP_PORT=1111\nHIVE_MCP_HOST=10.0.0.1\nHIVE_MCP_LOG_LEVEL=debug\n",
    )
    environ = {"HIVE_MCP_MODEL": "env-model", "HIVE_MCP_PORT": "2222"}
    s = load_settings({"model": "flag-model"}, environ=environ, cwd=tmp_path)
    assert s.model == "flag-model"  # flag beats env and .env
    assert s.port == 2222  # env beats .env
    assert s.host == "10.0.0.1"  # .env beats the default
    assert s.log_level == "DEBUG"
    assert s.heartbeat_s == 10.0  # nobody set it: default
    assert s.env_file == tmp_path / ".env"

    # Without the flag the environment wins; without both, .env.
    assert load_settings(environ=environ, cwd=tmp_path).model == "env-model"
    assert load_settings(environ={}, cwd=tmp_path).model == "dotenv-model"


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    write_env(tmp_path, "HIVE_MCP_MODEL=from-dotenv\n")
    s = load_settings({"model": None}, environ={"HIVE_MCP_MODEL": ""}, cwd=tmp_path)
    assert s.model == "from-dotenv"


def test_dotenv_is_read_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    write_env(here, 'HIVE_MCP_API_BASE="http://localhost:1234/v1"  # a comment\n')
    write_env(elsewhere, "HIVE_MCP_API_BASE=http://wrong/v1\n")
    monkeypatch.chdir(here)
    s = load_settings(environ={})
    assert s.api_base == "http://localhost:1234/v1"
    assert s.env_file == here / ".env"


def test_explicit_env_file(tmp_path: Path) -> None:
    other = tmp_path / "custom.env"
    other.write_text("HIVE_MCP_MODEL=custom\n")
    write_env(tmp_path, "HIVE_MCP_MODEL=ignored\n")
    assert load_settings(environ={}, cwd=tmp_path, env_file=other).model == "custom"
    with pytest.raises(SettingsError, match="--env-file"):
        load_settings(environ={}, cwd=tmp_path, env_file=tmp_path / "missing.env")


def test_api_key_from_env_and_dotenv_only(tmp_path: Path) -> None:
    write_env(tmp_path, f"HIVE_MCP_API_KEY={KEY}\n")
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.api_key_value == KEY
    assert load_settings(environ={"HIVE_MCP_API_KEY": "sk-from-env-abcdef"}, cwd=tmp_path).api_key_value == (
        "sk-from-env-abcdef"
    )
    with pytest.raises(SettingsError, match="HIVE_MCP_API_KEY"):
        load_settings({"api_key": KEY}, environ={}, cwd=tmp_path)
    # Nothing in the flag table could carry it either.
    assert next(f for f in SETTINGS_FIELDS if f.field == "api_key").flag is None


def test_api_key_is_not_in_repr_str_or_dump(tmp_path: Path) -> None:
    s = load_settings(environ={"HIVE_MCP_API_KEY": KEY}, cwd=tmp_path)
    assert KEY not in repr(s)
    assert KEY not in str(s)
    assert KEY not in s.model_dump_json()
    assert KEY not in str(s.model_dump())


def test_dotenv_provider_keys_are_exported_unless_already_set(tmp_path: Path) -> None:
    write_env(
        tmp_path,
        "OPENAI_API_KEY=sk-dotenv-openai-000000\n"
        "ANTHROPIC_API_KEY=from-dotenv\n"
        "HIVE_MCP_API_KEY=sk-hive-0000000000\n"
        "HIVE_MCP_MODEL=m\n",
    )
    environ = {"ANTHROPIC_API_KEY": "from-real-env"}
    load_settings(environ=environ, cwd=tmp_path)
    assert environ["OPENAI_API_KEY"] == "sk-dotenv-openai-000000"  # litellm will find it
    assert environ["ANTHROPIC_API_KEY"] == "from-real-env"  # the real environment wins
    assert "HIVE_MCP_API_KEY" not in environ and "HIVE_MCP_MODEL" not in environ  # ours stay in Settings

    untouched: dict[str, str] = {}
    load_settings(environ=untouched, cwd=tmp_path, export=False)
    assert untouched == {}


def test_export_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVE_MCP_TEST_ONLY_VAR", raising=False)
    write_env(tmp_path, "HIVE_MCP_TEST_ONLY_VAR=x\nHIVE_SETTINGS_TEST_PROVIDER_KEY=exported\n")
    monkeypatch.delenv("HIVE_SETTINGS_TEST_PROVIDER_KEY", raising=False)
    try:
        load_settings(cwd=tmp_path)
        assert os.environ["HIVE_SETTINGS_TEST_PROVIDER_KEY"] == "exported"
    finally:
        os.environ.pop("HIVE_SETTINGS_TEST_PROVIDER_KEY", None)


def test_dump_dir_default_follows_hive_home_even_from_dotenv(tmp_path: Path) -> None:
    write_env(tmp_path, f"HIVE_HOME={tmp_path / 'hh'}\n")
    assert load_settings(environ={"HOME": "/nonexistent"}, cwd=tmp_path).dump_dir == tmp_path / "hh" / "failed_requests"
    assert load_settings(environ={"HIVE_MCP_DUMP_DIR": "~/d"}, cwd=tmp_path).dump_dir == Path.home() / "d"
    assert load_settings({"dump_dir": str(tmp_path / "f")}, environ={}, cwd=tmp_path).dump_dir == tmp_path / "f"


def test_transport_names(tmp_path: Path) -> None:
    assert load_settings({"transport": "http"}, environ={}, cwd=tmp_path).transport == "http"
    assert load_settings(environ={"HIVE_MCP_TRANSPORT": "SSE"}, cwd=tmp_path).transport == "sse"  # any case


@pytest.mark.parametrize(
    ("flags", "environ", "dotenv", "names"),
    [
        ({"port": "eighty"}, {}, "", "--port"),
        ({}, {"HIVE_MCP_PORT": "70000"}, "", "HIVE_MCP_PORT"),
        ({}, {}, "HIVE_MCP_PORT=0\n", "HIVE_MCP_PORT (from "),
        ({}, {"HIVE_MCP_TRANSPORT": "carrier-pigeon"}, "", "HIVE_MCP_TRANSPORT"),
        ({"heartbeat_s": "-1"}, {}, "", "--heartbeat"),
        ({}, {"HIVE_MCP_LOG_LEVEL": "loud"}, "", "HIVE_MCP_LOG_LEVEL"),
        ({}, {"HIVE_MCP_DUMP_MAX_COUNT": "many"}, "", "HIVE_MCP_DUMP_MAX_COUNT"),
        ({}, {"HIVE_MCP_DUMP_MAX_MB": "nan"}, "", "HIVE_MCP_DUMP_MAX_MB"),
    ],
)
def test_invalid_values_give_one_line_naming_the_source(
    tmp_path: Path, flags: dict, environ: dict, dotenv: str, names: str
) -> None:
    if dotenv:
        write_env(tmp_path, dotenv)
    with pytest.raises(SettingsError) as info:
        load_settings(flags, environ=environ, cwd=tmp_path)
    message = str(info.value)
    assert message.startswith(names)
    assert "\n" not in message


@pytest.mark.parametrize(
    "variable, value",
    [
        ("HIVE_MCP_DEADLINE_S", "1e14"),
        ("HIVE_MCP_QUEUE_TIMEOUT_S", "1e300"),
        ("HIVE_MCP_CONVERSATION_TTL_S", "10000000000000"),
        ("HIVE_MCP_DUMP_MAX_AGE_DAYS", "1e300"),
        ("HIVE_MCP_SPEND_KEEP_DAYS", "99999999999"),
        ("HIVE_MCP_BUDGET_USD_DAY", "1e300"),
        ("HIVE_MCP_MAX_TOKENS", "1" + "0" * 30),
    ],
)
def test_a_value_past_its_upper_bound_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    """Values that would overflow a date, a timedelta or a 64-bit store column later, on every call."""
    with pytest.raises(SettingsError) as info:
        load_settings(environ={variable: value}, cwd=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{variable}: invalid value ") and "less than or equal to" in message, message
    assert "\n" not in message


def test_every_number_setting_has_an_upper_bound_and_works_at_it(tmp_path: Path) -> None:
    """Each int or float setting declares `le`; at that bound the settings load and what is derived from
    them (dates a deadline or a retention reaches, byte counts) is still in range."""
    from datetime import UTC, datetime

    bounds = {}
    for name, info in Settings.model_fields.items():
        if not any(t in str(info.annotation) for t in ("int", "float")):
            continue
        [le] = [m.le for m in info.metadata if getattr(m, "le", None) is not None] or [None]
        assert le is not None, f"{name} has no upper bound"
        bounds[f"HIVE_MCP_{name.upper()}"] = str(le)
    s = load_settings(environ={**bounds, "HIVE_MCP_CALLER_IN_FLIGHT": "1"}, cwd=tmp_path)
    now = datetime.now(UTC)
    assert now + s.dump_max_age > now and now + timedelta(seconds=s.deadline_s + s.queue_timeout_s) > now
    assert now - timedelta(days=s.spend_keep_days) < now and s.dump_max_bytes < 2**63


def test_invalid_port_message_is_clear(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"HIVE_MCP_PORT": "abc"}, cwd=tmp_path)
    assert str(info.value) == (
        "HIVE_MCP_PORT: invalid value 'abc': Input should be a valid integer, unable to parse string as an integer"
    )


def test_only_reads_the_settings_asked_for(tmp_path: Path) -> None:
    # `hive-mcp dumps list` must not fail on an unrelated bad variable.
    s = load_settings(environ={"HIVE_MCP_PORT": "abc", "HIVE_MCP_DUMP_DIR": str(tmp_path)}, only=("dump_dir",))
    assert s.dump_dir == tmp_path and s.port == 8765


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ValidationError) as info:
        s.port = 1  # type: ignore[misc]
    assert [(e["type"], e["loc"]) for e in info.value.errors()] == [("frozen_instance", ("port",))]
    assert s.port == 8765
    assert isinstance(s, Settings)


def test_each_setting_is_declared_once_with_its_environment_name() -> None:
    envs = [spec.env for spec in SETTINGS_FIELDS]
    assert len(envs) == len(set(envs))
    assert all(spec.env == "HIVE_MCP_" + spec.field.upper() and spec.help for spec in SETTINGS_FIELDS)
    assert "env_file" not in {spec.field for spec in SETTINGS_FIELDS}  # what was read, not a setting


def test_default_max_tokens_is_a_setting_apart_from_the_cap(tmp_path: Path) -> None:
    assert load_settings(environ={}, cwd=tmp_path).default_max_tokens is None  # the provider's own default
    s = load_settings(environ={"HIVE_MCP_DEFAULT_MAX_TOKENS": "2048", "HIVE_MCP_MAX_TOKENS": "4096"}, cwd=tmp_path)
    assert (s.default_max_tokens, s.max_tokens) == (2048, 4096)
    with pytest.raises(SettingsError, match=r"^HIVE_MCP_DEFAULT_MAX_TOKENS: invalid value '0'"):
        load_settings(environ={"HIVE_MCP_DEFAULT_MAX_TOKENS": "0"}, cwd=tmp_path)


def test_an_unknown_hive_variable_in_dotenv_is_ignored_and_not_read_as_a_setting(tmp_path: Path) -> None:
    write_env(tmp_path, "HIVE_MCP_NO_SUCH_SETTING=1\nHIVE_MCP_ENV_FILE=/elsewhere\n")
    s = load_settings(environ={"HIVE_MCP_ENV_FILE": "/nowhere"}, cwd=tmp_path, export=False)
    assert s.env_file == tmp_path / ".env"


def test_settings_built_directly_read_no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HIVE_MCP_PORT", "1234")
    assert Settings(dump_dir=tmp_path).port == 8765  # only load_settings reads the environment
