"""Every backend a server keeps state in, opened from the settings in one place (`open_backends`), and the one
place that maps a kind of state backend to the class of each store (`KINDS`).

The kind is named by the state URL's scheme (`state_url.SCHEMES`; no URL: SQLite
files and directories in the hive home). With a Redis/Valkey URL every worker and
instance shares it (one connection pool per process: `state_store`). Nothing is
connected before it is used: a store that cannot be reached degrades the calls
that need it, not the start.

Where a kind goes: its store modules beside the others' (`conversations/`,
`results/`, `tasks/`, `dumps/`: `<kind>_store.py`; `spend/<kind>_backend.py`; a
change bus beside `mcp/bus.py` if it has one); here, one class with a method per
store (the shape of `StateKind`) and its entry in `KINDS`; in `state_url.py`,
its schemes (`SCHEMES`) and its URL check (`_CHECKS`) if it has one. Nothing
else: serving (`open_backends`) and the commands (`dump_store`,
`conversation_store`, `spend_ledger`, `check_state`) open every store through
here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .scaling import serves_stateless
from .state_url import state_kind

if TYPE_CHECKING:
    from .conversations import ConversationLimits, ConversationStore
    from .dumps import DumpStore
    from .llms.config import ModelsConfig
    from .provider.base import LLMProvider
    from .results import ResultStore
    from .tasks import TaskEngine, TaskStore
    from .settings import Settings
    from .spend import Backend, Budgets, Spend

__all__ = [
    "KINDS", "Backends", "StateKind", "change_sharing", "check_state", "conversation_store", "dump_store",
    "open_backends", "result_store", "server_secrets", "spend_ledger", "task_engine",
]  # fmt: skip

Redact = Callable[[str], str]


@dataclass(frozen=True)
class Backends:
    """What one process keeps state in: failure dumps, conversations (None when off), the spend ledger, big
    answers, tasks, and how change events cross processes (a subscription bus, a dump directory watch; None: this
    process only)."""

    dumps: DumpStore
    conversations: ConversationStore | None
    spend: Spend
    results: ResultStore
    """Answers too big for one reply, kept for their owner (`hive://results/{id}`)."""
    tasks: TaskEngine | None
    """Calls that outlive their request, with their results (None: HIVE_MCP_TASKS_PER_CALLER=0)."""
    bus: Any
    dump_watch: Any


def open_backends(settings: Settings, secrets: tuple[str, ...], provider: LLMProvider, budgets: Budgets) -> Backends:
    """Every backend of a server, from its settings; `secrets` are kept out of every one (`server_secrets`)."""
    from .spend.setup import open_spend

    dumps = dump_store(settings, secrets)
    bus, watch = change_sharing(settings, dumps)
    return Backends(
        dumps, conversation_store(settings, secrets), open_spend(settings, spend_ledger(settings), provider, budgets),
        result_store(settings, secrets), task_engine(settings), bus, watch,
    )  # fmt: skip


def server_secrets(
    settings: Settings, config: ModelsConfig | None = None, tokens: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Every secret the server was given, in every form it was given, longest first: the credentials in
    the environment (each item of a list), the API key, the state password, the metrics token, the config's
    keys, the bearer
    tokens (the token part of each `name:token` entry, from the variable and the file), and what the
    configured URLs carry (`redact.url_secrets`); each also percent- and base64-encoded (`redact.secret_forms`).
    Kept out of logs, dumps, conversations and errors."""
    from .redact import credential_values, secret_forms, url_secrets

    return secret_forms((
        *credential_values(os.environ), settings.api_key_value, settings.state_password_value,
        settings.metrics_token_value, *url_secrets(settings.api_base), *url_secrets(settings.state_url),
        *(config.secrets if config is not None else ()), *tokens,
    ))  # fmt: skip


class StateKind(Protocol):
    """One kind of state backend: how it opens each store from the settings, connecting nothing."""

    def dumps(self, settings: Settings, secrets: Iterable[str], limits: dict[str, Any], degrade: bool) -> DumpStore:
        """The failure dumps, pruned by `limits` (None: never); without `degrade`, a store that does not answer
        raises StateUnavailable instead of falling back to the dump directory."""
        ...

    def conversations(self, settings: Settings, limits: ConversationLimits, redact: Redact) -> ConversationStore: ...

    def results(self, settings: Settings, redact: Redact) -> ResultStore: ...

    def tasks(self, settings: Settings) -> TaskStore: ...

    def spend(self, settings: Settings) -> Backend:
        """The spend ledger's store."""
        ...

    def sharing(self, settings: Settings, dumps: DumpStore) -> tuple[Any, Any]:
        """How change events cross processes (`change_sharing`)."""
        ...

    def check(self, settings: Settings) -> None:
        """Ask the store once, as a command does before it reads anything: StateUnavailable when it does not
        answer."""
        ...


class SQLiteKind:
    """No state URL: SQLite files in the hive home, the dump directory. Each process on the machine sharing the
    hive home reads the same files; workers of a stateless server watch the dump directory for changes."""

    def dumps(self, settings: Settings, secrets: Iterable[str], limits: dict[str, Any], degrade: bool) -> DumpStore:
        from .dumps import DumpStore

        return DumpStore(settings.dump_dir, secrets=secrets, **limits)

    def conversations(self, settings: Settings, limits: ConversationLimits, redact: Redact) -> ConversationStore:
        from .conversations.sqlite_store import SQLiteStore

        return SQLiteStore(limits=limits, redact=redact)

    def results(self, settings: Settings, redact: Redact) -> ResultStore:
        from .results.sqlite_store import SQLiteResults

        return SQLiteResults(ttl_s=settings.result_ttl_s, redact=redact)

    def tasks(self, settings: Settings) -> TaskStore:
        from .tasks.sqlite_store import SQLiteTaskStore

        return SQLiteTaskStore()

    def spend(self, settings: Settings) -> Backend:
        from .spend.sqlite_backend import SQLiteBackend

        return SQLiteBackend(keep_days=settings.spend_keep_days, calls_days=settings.spend_calls_days)

    def sharing(self, settings: Settings, dumps: DumpStore) -> tuple[Any, Any]:
        if settings.transport == "http" and serves_stateless(settings):
            from .dumps.watch import DumpDirectoryWatch

            return None, DumpDirectoryWatch(dumps)
        return None, None

    def check(self, settings: Settings) -> None:
        """Files need no asking: each store names its own path when it fails."""


class RedisKind:
    """A Redis/Valkey server at the state URL (password in it) for every store, shared by every worker and
    instance naming it, on the process's one pool (`state_store.StateStore.shared`); Redis pub/sub carries
    every change event (dumps, conversations, cooldowns) to every process on it."""

    def dumps(self, settings: Settings, secrets: Iterable[str], limits: dict[str, Any], degrade: bool) -> DumpStore:
        from .dumps.redis_store import RedisDumpStore

        return RedisDumpStore(self._url(settings), settings.dump_dir, secrets=secrets, degrade=degrade, **limits)

    def conversations(self, settings: Settings, limits: ConversationLimits, redact: Redact) -> ConversationStore:
        from .conversations.redis_store import RedisStore

        return RedisStore(self._url(settings), limits=limits, redact=redact)

    def results(self, settings: Settings, redact: Redact) -> ResultStore:
        from .results.redis_store import RedisResults

        return RedisResults(self._url(settings), ttl_s=settings.result_ttl_s, redact=redact)

    def tasks(self, settings: Settings) -> TaskStore:
        from .tasks.redis_store import RedisTaskStore

        return RedisTaskStore(self._url(settings))

    def spend(self, settings: Settings) -> Backend:
        from .spend.redis_backend import RedisBackend

        return RedisBackend(
            self._url(settings), keep_days=settings.spend_keep_days, calls_days=settings.spend_calls_days
        )

    def sharing(self, settings: Settings, dumps: DumpStore) -> tuple[Any, Any]:
        from .mcp.bus import RedisSubscriptionBus

        return RedisSubscriptionBus(self._url(settings)), None

    def check(self, settings: Settings) -> None:
        from .state_store import StateStore

        StateStore.shared(self._url(settings)).check()

    @staticmethod
    def _url(settings: Settings) -> str:
        url = settings.state_url_with_password
        assert url is not None  # the kind is named by the URL
        return url


KINDS: dict[str, StateKind] = {"sqlite": SQLiteKind(), "redis": RedisKind()}
"""Each kind of state backend (`state_url.state_kind` names it from the settings) and how it opens its stores."""


def kind_of(settings: Settings) -> StateKind:
    """The kind of state backend the settings name."""
    return KINDS[state_kind(settings.state_url)]


def dump_store(settings: Settings, secrets: Iterable[str] = (), *, retention: bool = True, degrade: bool = True) -> Any:
    """The failure-dump store of the settings' kind (on Redis with `degrade`, the dump directory while it is
    down; without, StateUnavailable). Without `retention` nothing is pruned. `hive-mcp dumps` opens it with
    neither."""
    limits: dict[str, Any] = (
        {"max_count": settings.dump_max_count, "max_bytes": settings.dump_max_bytes, "max_age": settings.dump_max_age}
        if retention
        else {"max_count": None, "max_bytes": None, "max_age": None}
    )
    return kind_of(settings).dumps(settings, secrets, limits, degrade)


def conversation_store(settings: Settings, secrets: tuple[str, ...] = ()) -> Any:
    """The conversation store the settings ask for (None when HIVE_MCP_CONVERSATIONS=off).

    Nothing is opened yet: a store that cannot be reached fails the calls that
    continue a conversation, and new calls go ahead without an id. `secrets` are
    redacted with the settings' own (`server_secrets`).
    """
    if settings.conversations == "off":
        return None
    from .conversations import ConversationLimits
    from .redact import normalize_secrets, redact_text

    found = normalize_secrets((*server_secrets(settings), *secrets))
    limits = ConversationLimits(
        ttl_s=settings.conversation_ttl_s, max_conversations=settings.conversation_max,
        max_turns=settings.conversation_max_turns, max_bytes=settings.conversation_max_bytes,
    )  # fmt: skip
    return kind_of(settings).conversations(settings, limits, lambda text: redact_text(text, found))


def result_store(settings: Settings, secrets: tuple[str, ...] = ()) -> ResultStore:
    """Answers too big for one reply (`hive://results/{id}`), kept HIVE_MCP_RESULT_TTL_S, `secrets` redacted."""
    from .redact import redact_text

    return kind_of(settings).results(settings, lambda text: redact_text(text, secrets))


def spend_ledger(settings: Settings) -> Backend:
    """The spend ledger's store the settings name (serving's `Spend` and `hive-mcp usage`)."""
    return kind_of(settings).spend(settings)


def check_state(settings: Settings) -> None:
    """Ask the settings' state store once, as a command does before it reads or removes anything:
    StateUnavailable (one line naming HIVE_MCP_STATE_URL) when it does not answer."""
    kind_of(settings).check(settings)


def change_sharing(settings: Settings, store: Any) -> tuple[Any, Any]:
    """How change events cross processes: (a subscription bus or None, a dump directory watch or None), as the
    settings' kind shares them. A single stateful process needs neither (None, None: the SDK's in-memory bus)."""
    return kind_of(settings).sharing(settings, store)


def task_engine(settings: Settings) -> TaskEngine | None:
    """The task engine the settings ask for (None when HIVE_MCP_TASKS_PER_CALLER is 0), on the store of the
    settings' kind."""
    if settings.tasks_per_caller == 0:
        return None
    from .defaults import TASK_TTL_S
    from .tasks import TaskEngine

    return TaskEngine(
        kind_of(settings).tasks(settings), per_caller=settings.tasks_per_caller,
        ttl_s=min(TASK_TTL_S, settings.task_max_ttl_s), max_ttl_s=settings.task_max_ttl_s, admins=settings.admins,
    )  # fmt: skip
