"""Every backend a server keeps state in, opened from the settings in one place (`open_backends`).

SQLite files and directories in the hive home by default; with
HIVE_MCP_STATE_URL, a Redis/Valkey server that every worker and instance shares
(one connection pool per process: `state_store`). A state backend added is one
more field of `Backends`, opened here. Nothing is connected before it is used:
a store that cannot be reached degrades the calls that need it, not the start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .scaling import serves_stateless

if TYPE_CHECKING:
    from .conversations import ConversationStore
    from .dumps import DumpStore
    from .llms.config import ModelsConfig
    from .provider.base import LLMProvider
    from .results import ResultStore
    from .tasks import TaskEngine
    from .settings import Settings
    from .spend import Budgets, Spend

__all__ = [
    "Backends", "change_sharing", "conversation_store", "dump_store", "open_backends", "server_secrets", "task_engine",
]  # fmt: skip


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
    from .redact import redact_text
    from .results import open_results
    from .spend.setup import open_spend

    dumps = dump_store(settings, secrets)
    bus, watch = change_sharing(settings, dumps)
    results = open_results(
        settings.state_url_with_password, ttl_s=settings.result_ttl_s, redact=lambda text: redact_text(text, secrets)
    )
    return Backends(
        dumps, conversation_store(settings, secrets), open_spend(settings, provider, budgets), results,
        task_engine(settings), bus, watch,
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


def dump_store(settings: Settings, secrets: Iterable[str] = (), *, retention: bool = True, degrade: bool = True) -> Any:
    """The failure-dump store: in Redis with HIVE_MCP_STATE_URL (with `degrade`, the dump directory while it is
    down; without, StateUnavailable), else the directory. Without `retention` nothing is pruned. `hive-mcp dumps`
    opens it with neither."""
    from .dumps import DumpStore

    limits: dict[str, Any] = (
        {"max_count": settings.dump_max_count, "max_bytes": settings.dump_max_bytes, "max_age": settings.dump_max_age}
        if retention
        else {"max_count": None, "max_bytes": None, "max_age": None}
    )
    if not settings.state_url:
        return DumpStore(settings.dump_dir, secrets=secrets, **limits)
    from .dumps.redis_store import RedisDumpStore

    return RedisDumpStore(settings.state_url_with_password, settings.dump_dir, secrets=secrets, degrade=degrade,
                          **limits)


def conversation_store(settings: Settings, secrets: tuple[str, ...] = ()) -> Any:
    """The conversation store the settings ask for (None when HIVE_MCP_CONVERSATIONS=off).

    SQLite in the hive home unless HIVE_MCP_STATE_URL names a Redis/Valkey server.
    Nothing is opened yet: a store that cannot be reached fails the calls that
    continue a conversation, and new calls go ahead without an id. `secrets` are
    redacted with the settings' own (`server_secrets`).
    """
    if settings.conversations == "off":
        return None
    from .conversations import ConversationLimits, open_store
    from .redact import normalize_secrets, redact_text

    found = normalize_secrets((*server_secrets(settings), *secrets))
    limits = ConversationLimits(
        ttl_s=settings.conversation_ttl_s, max_conversations=settings.conversation_max,
        max_turns=settings.conversation_max_turns, max_bytes=settings.conversation_max_bytes,
    )  # fmt: skip
    return open_store(settings.state_url_with_password, limits=limits, redact=lambda text: redact_text(text, found))


def change_sharing(settings: Settings, store: Any) -> tuple[Any, Any]:
    """How change events cross processes: (a subscription bus or None, a dump directory watch or None).

    With HIVE_MCP_STATE_URL, Redis pub/sub carries every change event (dumps,
    conversations, cooldowns) to every process on it. Without one, workers of a
    stateless server share at least the dump directory, so each watches it. A
    single stateful process needs neither (None, None: the SDK's in-memory bus).
    """
    if settings.state_url:
        from .mcp.bus import RedisSubscriptionBus

        return RedisSubscriptionBus(settings.state_url_with_password), None
    if settings.transport == "http" and serves_stateless(settings):
        from .dumps.watch import DumpDirectoryWatch

        return None, DumpDirectoryWatch(store)
    return None, None


def task_engine(settings: Settings) -> Any:
    """The task engine the settings ask for (None when HIVE_MCP_TASKS_PER_CALLER is 0), on the state store: Redis
    at HIVE_MCP_STATE_URL, else SQLite in the hive home."""
    if settings.tasks_per_caller == 0:
        return None
    from .defaults import TASK_TTL_S
    from .tasks import TaskEngine, open_task_store

    return TaskEngine(
        open_task_store(settings.state_url_with_password), per_caller=settings.tasks_per_caller,
        ttl_s=min(TASK_TTL_S, settings.task_max_ttl_s), max_ttl_s=settings.task_max_ttl_s, admins=settings.admins,
    )  # fmt: skip
