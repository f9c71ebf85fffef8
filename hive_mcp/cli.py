"""The `hive-mcp` command: serve MCP (the default), or look after the failure dumps.

    hive-mcp [--transport stdio|http|sse] [--host H] [--port P] [--model M] ...
    hive-mcp dumps list [--error-type T] [--model M] [--since 2h|2026-11-20] [--limit N]
    hive-mcp dumps show ID
    hive-mcp dumps purge --all | --older-than 7d [--yes]
    hive-mcp conversations list [--model M] [--limit N] | show ID | delete ID
    hive-mcp usage [--since 7d] [--by model|caller|day] [--json]

The top-level flags apply to every command, as to serving: each given is checked (one line and exit 2 when
bad) and those a command reads (--config, --dump-dir, --env-file, --model) count; `cli_common.command_settings`
reads them. A command whose settings name a state store (HIVE_MCP_STATE_URL) asks it first, and one that does
not answer is one line and exit 1.

This module parses arguments, runs the `dumps` commands, and hands serving to
`hive_mcp.serve`, which runs stdio (`hive_mcp.stdio`) or HTTP (`hive_mcp.http`). Nothing slow is
imported at module level: litellm (seconds) and mcp are imported only when
serving, so `--help` and `dumps` answer at once. Logs go to stderr only; under
stdio, stdout carries the protocol and nothing else.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from . import conversations_cli, spend_cli, stopping
from .conversations_cli import add_conversations_parser, run_conversations
from .spend_cli import add_usage_parser, run_usage
from .exposure import exposure_problem
from .serve import DUMP_DIR_NAMED, EXIT_OK, EXIT_USAGE, serve
from .since import parse_duration
from .cli_common import add_limit, command_settings, parse_since, print_table
from .settings import SETTINGS_FIELDS, SettingsError, load_settings

__all__ = ["PROVIDER_KEY_VARS", "main", "parse_duration", "parse_since", "print_table"]

PROG = "hive-mcp"
EXIT_FAILURE = 1

PROVIDER_KEY_VARS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "OpenAI and openai/ models (read by litellm)"),
    ("ANTHROPIC_API_KEY", "anthropic/ models"),
    ("GEMINI_API_KEY", "gemini/ models"),
    ("OPENROUTER_API_KEY", "openrouter/ models"),
    ("GROQ_API_KEY", "groq/ models"),
    ("MISTRAL_API_KEY", "mistral/ models"),
    ("AZURE_API_KEY", "azure/ models (with AZURE_API_BASE, AZURE_API_VERSION)"),
)
"""litellm's own key variables, documented in `--help`. Any variable litellm reads works."""


class UsageError(Exception):
    """A bad argument or setting: reported as one line, exit code 2."""


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------


def _entry(name: str, text: str, total: int = 79) -> list[str]:
    """One `NAME  description` entry of the epilog, continued four columns in."""
    return textwrap.wrap(f"{name}  {text}", total, initial_indent="  ", subsequent_indent="    ",
                         break_on_hyphens=False)


def _paragraph(text: str, total: int = 79) -> list[str]:
    return textwrap.wrap(text, total, subsequent_indent="  ", break_on_hyphens=False)


DESCRIPTION = """\
An MCP server for LLM completion through litellm. Tools: complete and
stream_complete (a chat completion, streamed as progress), list_models,
list_conversations, list_failed_requests, and dashboard (failures and spend as
an MCP App); failed calls are resources (hive://failed-requests/ID). Over http
a web dashboard is at /dashboard. With no command it serves MCP over stdio.

examples:
  HIVE_MCP_API_KEY=sk-... hive-mcp --model openai/gpt-4o-mini
  hive-mcp --api-base http://127.0.0.1:1234/v1 --model openai/local-model
  HIVE_MCP_AUTH_TOKEN=secret hive-mcp --transport http --port 8765
      (MCP at http://127.0.0.1:8765/mcp, the dashboard at /dashboard)
"""


def _environment_help() -> str:
    """The settings that have no flag (those with one are described beside it), then notes."""
    lines = ["environment only (a flag wins over the environment, which wins over .env):"]
    for spec in SETTINGS_FIELDS:
        if spec.flag is None:
            lines += _entry(spec.env, spec.help)
    keys = ", ".join(name for name, _ in PROVIDER_KEY_VARS)
    lines += [""]
    lines += _paragraph(
        f"provider keys: without HIVE_MCP_API_KEY, litellm reads its own variable for the provider: {keys} "
        "(with AZURE_API_BASE, AZURE_API_VERSION), or any other it knows."
    )
    lines += _paragraph(
        "litellm: LITELLM_LOCAL_MODEL_COST_MAP=True and LITELLM_OFFLINE_MODE=true (defaults here) keep "
        "start-up offline; LITELLM_LOG sets its log level."
    )
    lines += _paragraph(
        ".env: read from the working directory (or --env-file) at start-up: HIVE_MCP_* entries are settings, "
        "others (OPENAI_API_KEY, ...) are exported for litellm."
    )
    lines += _paragraph(
        "http/sse: GET /healthz answers without a token; with tokens set, everything else needs "
        "`Authorization: Bearer TOKEN` (else 401)."
    )
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 2, like argparse, but without the multi-line usage dump.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [options]\n       {PROG} dumps {{list,show,purge}} ...\n       {PROG} conversations {{list,show,delete}} ...\n       {PROG} usage [--since 7d] [--by model|caller|day] [--json]",
        description=DESCRIPTION,
        epilog=_environment_help(),
        formatter_class=fmt,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    # One flag per setting that has one, from its declaration in `Settings` (the help ends with its variable).
    groups = {name: parser.add_argument_group(name) for name in ("serving", "common")}
    for spec in SETTINGS_FIELDS:
        if spec.flag is None:
            continue
        group = groups[spec.group]
        text = f"{spec.help} [{spec.env}]".replace("%", "%%")
        if spec.kind == "switch":
            group.add_argument(spec.flag, dest=spec.field, action="store_true", default=None, help=text)
        elif spec.kind == "list":
            group.add_argument(spec.flag, dest=spec.field, action="append", metavar=spec.metavar, help=text)
        elif spec.choices:
            group.add_argument(spec.flag, dest=spec.field, choices=spec.choices, help=text)
        else:
            group.add_argument(spec.flag, dest=spec.field, metavar=spec.metavar, help=text)
    groups["common"].add_argument("--env-file", metavar="PATH", help="read this file instead of ./.env")

    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND", parser_class=_Parser)
    dumps = commands.add_parser(
        "dumps",
        prog=f"{PROG} dumps",
        help="list, show or purge failed-request dumps",
        description="Failed-request dumps: one redacted JSON file per failed call.",
        formatter_class=fmt,
    )
    # SUPPRESS: given after the subcommand it overrides, absent it leaves the top-level value.
    dump_dir = {"metavar": "DIR", "default": argparse.SUPPRESS}
    dumps.add_argument("--dump-dir", help="dump directory [HIVE_MCP_DUMP_DIR]", **dump_dir)
    actions = dumps.add_subparsers(dest="dumps_command", metavar="ACTION", required=True, parser_class=_Parser)

    lst = actions.add_parser(
        "list",
        prog=f"{PROG} dumps list",
        help="a table of dumps, newest first",
        description="A table of dumps, newest first. Times are local.",
    )
    lst.add_argument("--error-type", metavar="TYPE", help="only this error type, e.g. rate_limit, auth, transient")
    lst.add_argument("--model", dest="filter_model", metavar="MODEL", help="only this model, e.g. openai/gpt-4o-mini")
    lst.add_argument(
        "--since",
        metavar="WHEN",
        help="only dumps newer than a duration back from now (30m, 12h, 7d) or an ISO date/time "
        "(2026-11-20, 2026-11-20T14:30; local time unless it has an offset)",
    )
    add_limit(lst)
    lst.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)

    show = actions.add_parser(
        "show", prog=f"{PROG} dumps show", help="print one dump as pretty JSON", description="Print one dump as JSON."
    )
    show.add_argument("id", metavar="ID", help="a dump id, as printed by `dumps list`")
    show.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)

    purge = actions.add_parser(
        "purge",
        prog=f"{PROG} dumps purge",
        help="delete dumps: --all, or those --older-than an age",
        description="Delete every dump (--all) or those older than an age (--older-than). "
        "On a terminal it asks first, unless --yes.",
    )
    scope = purge.add_mutually_exclusive_group()
    scope.add_argument("--older-than", metavar="AGE", help="only dumps older than this: 30m, 12h, 7d, 2w, 1d12h")
    scope.add_argument("--all", dest="purge_all", action="store_true", help="every dump")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask, even on a terminal")
    purge.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)
    add_conversations_parser(commands, PROG, _Parser)
    add_usage_parser(commands, PROG, _Parser)
    return parser


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        _refuse_key_flag(args_list)
        parser = build_parser()
        _refuse_unknown_flag(parser, args_list)
        args = parser.parse_args(args_list)
        flags = {spec.field: getattr(args, spec.field) for spec in SETTINGS_FIELDS if spec.flag}
        if args.command is not None:
            stopping.commanding()
            return _command(args, flags)
        settings = load_settings(flags, env_file=args.env_file)
        tokens = settings.auth_tokens() if settings.transport != "stdio" else ()
        problem = exposure_problem(settings, tokens)
        if problem:
            raise UsageError(problem)
    except (UsageError, SettingsError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:  # only a command sees one: until serving, a stop signal ends the process (`stopping`)
        return stopping.EXIT_INTERRUPTED
    return serve(settings, tokens)


_READS = {"dumps": ("dump_dir", "state_url", "state_password"), "conversations": conversations_cli.SETTINGS,
          "usage": spend_cli.SETTINGS}  # fmt: skip
"""The settings each command reads, beside the config, the default model and the flags given."""


def _command(args: argparse.Namespace, flags: dict[str, Any]) -> int:
    """A command: its settings (`command_settings`; a bad one raises SettingsError), its state store asked once
    (no answer: one line naming HIVE_MCP_STATE_URL, exit 1, before anything is read or removed), then the command."""
    from .backends import check_state
    from .state_store import StateUnavailable

    settings, config = command_settings(flags, args.env_file, _READS[args.command])
    try:
        check_state(settings)
        if args.command == "dumps":
            return _dumps(args, settings)
    except StateUnavailable as exc:
        return _fail(str(exc), EXIT_FAILURE)
    if args.command == "conversations":
        code, error = run_conversations(args, settings)
    else:
        code, error = run_usage(args, settings, config)
    return _fail(error, code) if error else code


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _refuse_unknown_flag(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """The first `--flag` the command it is given to does not take, named, with the close one among those it
    does take (argparse would take the flag's value for a command: "invalid choice: '8000'" for `--prot 8000`).
    A top-level flag given after a command is told to go before it."""
    here, words, top, value_next = parser, [], _flags(parser), False
    for arg in argv:
        if arg == "--":
            return
        name = arg.split("=", 1)[0]
        if value_next:  # the value of the flag before it (`--model usage`), neither a flag nor a command
            value_next = False
            continue
        if name in _commands(here):
            here = _commands(here)[name]
            words.append(name)
            continue
        if not name.startswith("--"):
            continue
        if name in _flags(here):
            value_next = "=" not in arg and here._option_string_actions[name].nargs != 0  # noqa: SLF001
            continue
        if here is not parser and name in top:
            raise UsageError(f"{name} is an option of {PROG} itself, not of `{' '.join(words)}`: give it before "
                             "the command")
        close = difflib.get_close_matches(name, sorted(_flags(here)), n=1, cutoff=0.6)
        raise UsageError(f"unknown option {name}" + (f"; did you mean {close[0]}?" if close else ""))


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every `--flag` `parser` itself takes (not its commands')."""
    return {o for action in parser._actions for o in action.option_strings if o.startswith("--")}  # noqa: SLF001


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands `parser` takes, by name (argparse has no public walk over its actions)."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _refuse_key_flag(argv: Sequence[str]) -> None:
    for arg in argv:
        if arg == "--":
            break
        if arg in ("--api-key", "--key") or arg.startswith(("--api-key=", "--key=")):
            raise UsageError(
                "the API key is not accepted as a flag (command lines are visible to other users in `ps`): "
                "set HIVE_MCP_API_KEY (or OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) in the environment or in .env"
            )
        if arg in ("--auth-token", "--token") or arg.startswith(("--auth-token=", "--token=")):
            raise UsageError(
                "bearer tokens are not accepted as a flag (command lines are visible to other users in `ps`): "
                "set HIVE_MCP_AUTH_TOKEN or HIVE_MCP_AUTH_TOKEN_FILE in the environment or in .env"
            )


# ---------------------------------------------------------------------------
# dumps list | show | purge
# ---------------------------------------------------------------------------


def _dumps(args: argparse.Namespace, settings: Any) -> int:
    """`dumps list|show|purge` on the store `settings` name; Redis failing midway raises StateUnavailable."""
    from .dumps import DumpCorrupt, DumpLookupError
    from .backends import dump_store
    from .home import NOT_A_DIRECTORY, unsafe_dir

    if unsafe_dir(settings.dump_dir) == NOT_A_DIRECTORY:  # as serving refuses it: not "no failed requests"
        return _fail(f"{DUMP_DIR_NAMED} {settings.dump_dir} {NOT_A_DIRECTORY}", EXIT_USAGE)
    store = dump_store(settings, retention=False, degrade=False)  # in Redis with HIVE_MCP_STATE_URL
    try:
        if args.dumps_command == "list":
            return _dumps_list(store, args)
        if args.dumps_command == "show":
            return _dumps_show(store, args.id)
        return _dumps_purge(store, args)
    except DumpCorrupt as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except DumpLookupError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or store.directory}", EXIT_FAILURE)


def _dumps_list(store: Any, args: argparse.Namespace) -> int:
    since = None
    if args.since is not None:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    from .dumps import MAX_PAGE_LIMIT

    items: list[Any] = []
    cursor: str | None = None
    more = False
    while len(items) < args.limit:
        page = store.list(
            error_type=args.error_type,
            model=args.filter_model,
            since=since,
            limit=min(MAX_PAGE_LIMIT, args.limit - len(items)),
            cursor=cursor,
        )
        items.extend(page.items)
        cursor = page.next_cursor
        more = cursor is not None
        if not more:
            break

    if not items:
        print(f"no failed requests in {store.directory}", file=sys.stderr)
        return EXIT_OK
    rows = [
        (
            s.timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            s.error_type,
            s.outcome,
            str(s.attempt_count),
            s.model,
            _size(s.size_bytes),
            s.id,
        )
        for s in items
    ]
    print_table(("TIME", "ERROR", "OUTCOME", "ATTEMPTS", "MODEL", "SIZE", "ID"), rows)
    if more:
        print(f"(showing the newest {len(items)}; more match: raise --limit)", file=sys.stderr)
    return EXIT_OK


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _dumps_show(store: Any, dump_id: str) -> int:
    text = store.read_text(dump_id.strip())
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass  # show what is there; the file is what the user asked for
    print(text)
    return EXIT_OK


def _dumps_purge(store: Any, args: argparse.Namespace) -> int:
    older_than = args.older_than
    if older_than is None and not args.purge_all:
        raise UsageError("dumps purge: give --all (every dump) or --older-than AGE (e.g. 7d); nothing was removed")
    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    if not args.yes and sys.stdin.isatty():
        what = f"dumps older than {older_than}" if older_than else f"{_count(store.count(), 'dump')}"
        if not _confirm(f"delete {what} from {store.directory}?"):
            print("nothing removed", file=sys.stderr)
            return EXIT_OK
    removed = store.purge(age)
    scope = f" older than {older_than}" if older_than else ""
    print(f"removed {_count(removed, 'dump')}{scope} from {store.directory}")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _confirm(question: str) -> bool:
    """A yes from the terminal; anything else, end of input included, is a no."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        answer = ""
    return answer.strip().lower() in ("y", "yes")
