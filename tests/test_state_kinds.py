"""The kind of state backend (SQLite in the hive home, or Redis/Valkey at HIVE_MCP_STATE_URL) is decided once:
`state_url.state_kind` names it from the URL's scheme, and `backends.py` alone opens each kind's class of every
store, for serving and for the commands alike. Nothing is connected when a store is opened."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import hive_mcp
from hive_mcp import backends
from hive_mcp.conversations.redis_store import RedisStore
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.dumps.redis_store import RedisDumpStore
from hive_mcp.dumps.watch import DumpDirectoryWatch
from hive_mcp.mcp.bus import RedisSubscriptionBus
from hive_mcp.results.redis_store import RedisResults
from hive_mcp.results.sqlite_store import SQLiteResults
from hive_mcp.settings import load_settings
from hive_mcp.spend.redis_backend import RedisBackend
from hive_mcp.spend.sqlite_backend import SQLiteBackend
from hive_mcp.state_url import SCHEMES, SCHEMES_TEXT, check_state_url, state_kind
from hive_mcp.tasks.redis_store import RedisTaskStore
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from harness.processes import free_port

PACKAGE = Path(hive_mcp.__file__).parent
README = Path(__file__).resolve().parents[1] / "README.md"
SQLITE = {"dumps": DumpStore, "conversations": SQLiteStore, "results": SQLiteResults, "tasks": SQLiteTaskStore,
          "spend": SQLiteBackend}  # fmt: skip
REDIS = {"dumps": RedisDumpStore, "conversations": RedisStore, "results": RedisResults, "tasks": RedisTaskStore,
         "spend": RedisBackend}  # fmt: skip


def settings(**environ: str):  # noqa: ANN201 - a Settings
    return load_settings(environ={f"HIVE_MCP_{k.upper()}": v for k, v in environ.items()}, export=False)


def opened(s) -> dict[str, object]:  # noqa: ANN001 - a Settings
    """Every store `s` names, as serving opens it (the task engine's store for the tasks)."""
    engine = backends.task_engine(s)
    return {
        "dumps": backends.dump_store(s), "conversations": backends.conversation_store(s),
        "results": backends.result_store(s), "tasks": engine.store if engine is not None else None,
        "spend": backends.spend_ledger(s),
    }  # fmt: skip


def kinds_of(stores: dict[str, object]) -> dict[str, type]:
    return {name: type(store) for name, store in stores.items()}


def test_without_a_state_url_every_store_is_sqlite_or_the_dump_directory(tmp_path: Path) -> None:
    s = settings(dump_dir=str(tmp_path / "dumps"))
    assert kinds_of(opened(s)) == SQLITE
    assert backends.change_sharing(s, backends.dump_store(s)) == (None, None)  # one process: the SDK's bus
    stateless = settings(transport="http", stateless="true")
    bus, watch = backends.change_sharing(stateless, backends.dump_store(stateless))
    assert bus is None and isinstance(watch, DumpDirectoryWatch)  # workers share the dump directory


@pytest.mark.parametrize("scheme", ["redis", "rediss", "unix"])
def test_a_redis_url_puts_every_store_and_the_bus_on_redis_without_connecting(scheme: str, tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/nobody.sock" if scheme == "unix" else f"{scheme}://127.0.0.1:{free_port()}/0"
    s = settings(state_url=url, transport="http", stateless="true")
    assert kinds_of(opened(s)) == REDIS  # no server answers there: opening asked nothing
    bus, watch = backends.change_sharing(s, backends.dump_store(s))
    assert isinstance(bus, RedisSubscriptionBus) and watch is None


def test_the_commands_open_the_stores_serving_opens() -> None:
    for s in (settings(), settings(state_url=f"redis://127.0.0.1:{free_port()}/0")):
        expected = SQLITE if s.state_url is None else REDIS
        assert type(backends.dump_store(s, retention=False, degrade=False)) is expected["dumps"]  # hive-mcp dumps
        assert type(backends.spend_ledger(s)) is expected["spend"]  # hive-mcp usage
        assert type(backends.conversation_store(s)) is expected["conversations"]  # hive-mcp conversations


def test_each_scheme_names_one_kind_and_no_url_names_sqlite() -> None:
    assert state_kind(None) == "sqlite"
    assert {scheme: state_kind(f"{scheme}://h/0") for scheme in ("redis", "rediss", "unix")} == dict.fromkeys(
        ("redis", "rediss", "unix"), "redis")
    assert set(backends.KINDS) == {"sqlite", *(kind for kind, _ in SCHEMES.values())}  # every kind is opened
    with pytest.raises(ValueError) as refused:
        check_state_url("http://h:1/0")
    assert str(refused.value) == f"http:// is not a state store scheme; expected {SCHEMES_TEXT}"
    assert SCHEMES_TEXT.startswith("redis://, rediss://")


def test_the_readmes_state_url_row_names_every_scheme_state_url_accepts() -> None:
    """The settings table's `HIVE_MCP_STATE_URL` row opens with the schemes a state URL may have, as the errors
    name them (`SCHEMES_TEXT`, from `state_url.SCHEMES`): a scheme added there and not in the README fails here."""
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `HIVE_MCP_STATE_URL` |"))
    described = row.split("|")[4].strip()
    assert described.split(": ", 1)[0] == re.sub(r"(\S+://)", r"`\1`", SCHEMES_TEXT), row


def kind_of_module(module: str) -> str | None:
    """The kind a store module belongs to, from its name (`<kind>_store`, `<kind>_backend`), or None."""
    stem = module.rsplit(".", 1)[-1]
    for suffix in ("_store", "_backend"):
        if stem.endswith(suffix) and stem != f"state{suffix}":
            return stem.removesuffix(suffix)
    return None


def test_only_backends_chooses_a_kind() -> None:
    """To choose between kinds a module reads the state URL or imports the store modules of two kinds: only
    backends.py does either (settings/ declares the URL, state_url.py checks it)."""
    choosing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "backends.py" or rel.startswith("settings/"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        reads = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & {"state_url",
                                                                                    "state_url_with_password"}
        imports = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        kinds = {kind_of_module(m) for m in imports} - {None}
        if reads or len(kinds) > 1:
            choosing.append((rel, sorted(reads), sorted(kinds)))  # type: ignore[arg-type]
    assert choosing == []
