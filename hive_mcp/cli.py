"""The `hive-mcp` command: serve MCP (the default), or look after the failure dumps.

    hive-mcp [--transport stdio|http|sse] [--host H] [--port P] [--model M] ...
    hive-mcp dumps list [--error-type T] [--model M] [--since 2h|2026-11-20] [--limit N]
    hive-mcp dumps show ID
    hive-mcp dumps purge [--older-than 7d]

Nothing slow is imported at module level: litellm (seconds) and mcp are imported
only when serving, so `--help` and `dumps` answer at once. Logs go to stderr
only; under stdio, stdout carries the protocol and nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, NoReturn

from . import __version__
from .settings import PROVIDER_KEY_VARS, SETTINGS_FIELDS, Settings, SettingsError, load_settings

__all__ = ["main", "parse_duration", "parse_since"]

PROG = "hive-mcp"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger("hive_mcp")


class UsageError(Exception):
    """A bad argument or setting: reported as one line, exit code 2."""


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """`30s`, `30m`, `12h`, `7d`, `2w`, or a sum such as `1d12h`. Raises ValueError."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 12h, 7d (units: w d h m s)")
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too large") from None


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A duration back from now (`2h`, `7d`) or an ISO date/time (`2026-11-20`, `2026-11-20T14:30`).

    A date or time without an offset is local time. Raises ValueError.
    """
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    except OverflowError:
        raise ValueError(f"invalid --since {text!r}: too far back") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"invalid --since {text!r}: use a duration back from now (30m, 12h, 7d) "
            "or an ISO date/time (2026-11-20, 2026-11-20T14:30, 2026-11-20T14:30Z)"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------


def _entry(name: str, text: str, width: int, total: int = 79) -> list[str]:
    """One `NAME  description` entry of the epilog, wrapped with a hanging indent."""
    indent = " " * (2 + width)
    if len(name) + 2 > width:
        return [f"  {name}", *textwrap.wrap(text, total, initial_indent=indent, subsequent_indent=indent)]
    return textwrap.wrap(text, total, initial_indent=f"  {name:<{width}}", subsequent_indent=indent)


def _environment_help() -> str:
    width = max(len(s.env) for s in SETTINGS_FIELDS) + 2
    lines = ["environment (a flag wins over the environment, which wins over .env):"]
    for spec in SETTINGS_FIELDS:
        flag = f" [{spec.flag}]" if spec.flag else ""
        lines += _entry(spec.env, spec.help + flag, width)
    lines += ["", "provider keys (read by litellm; used when HIVE_MCP_API_KEY is unset):"]
    for name, what in PROVIDER_KEY_VARS:
        lines += _entry(name, what, width)
    lines += _entry("...", "any other variable litellm reads for your provider", width)
    lines += ["", "litellm (the first two are recommended offline or behind a filtering proxy):"]
    lines += _entry("LITELLM_LOCAL_MODEL_COST_MAP=True", "use the bundled model cost map: no fetch at import", width)
    lines += _entry("LITELLM_OFFLINE_MODE=true", "no network fetches for headers or tokenizers", width)
    lines += _entry("LITELLM_LOG=LEVEL", "litellm's own log level (default WARNING, DEBUG at --log-level DEBUG)", width)
    lines += [
        "",
        ".env: a .env file in the working directory (or --env-file PATH) is read at",
        "  start-up. Its HIVE_MCP_* entries are settings; every other entry",
        "  (OPENAI_API_KEY, ...) is exported to the environment for litellm unless the",
        "  environment already has it. The API key is never accepted as a flag: flags",
        "  are visible to other users in `ps`.",
        "",
        "failed requests: each failed call is saved, redacted, as JSON in the dump",
        "  directory. MCP clients read them as resources hive://failed-requests and",
        "  hive://failed-requests/ID; people use `hive-mcp dumps list|show|purge`.",
    ]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 2, like argparse, but without the multi-line usage dump.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [options]\n       {PROG} dumps {{list,show,purge}} ...",
        description=textwrap.dedent(
            """\
            An MCP server for LLM completion through litellm: tools complete,
            stream_complete and list_failed_requests; failed calls as resources.
            With no command it serves MCP (stdio unless --transport says otherwise).
            """
        ),
        epilog=_environment_help(),
        formatter_class=fmt,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    serve = parser.add_argument_group("serving")
    serve.add_argument(
        "--transport",
        choices=("stdio", "http", "sse"),
        help="stdio (default): for clients that start the server; http: streamable HTTP at "
        "http://HOST:PORT/mcp; sse: the legacy HTTP+SSE transport at /sse [HIVE_MCP_TRANSPORT]",
    )
    serve.add_argument(
        "--host", metavar="HOST", help="address to bind for http/sse (default 127.0.0.1) [HIVE_MCP_HOST]"
    )
    serve.add_argument("--port", metavar="PORT", help="port for http/sse (default 8765) [HIVE_MCP_PORT]")
    serve.add_argument(
        "--model",
        metavar="MODEL",
        help="default litellm model, e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5 "
        "(default gpt-4o-mini) [HIVE_MCP_MODEL]",
    )
    serve.add_argument(
        "--api-base",
        metavar="URL",
        help="provider base URL, e.g. a proxy or a local OpenAI-compatible server [HIVE_MCP_API_BASE]",
    )
    serve.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        help="seconds between progress heartbeats while waiting on the model, so clients do not "
        "time out (default 10) [HIVE_MCP_HEARTBEAT_S]",
    )
    serve.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL; logs go to stderr (default INFO) [HIVE_MCP_LOG_LEVEL]",
    )

    common = parser.add_argument_group("common")
    common.add_argument(
        "--dump-dir",
        metavar="DIR",
        help="failed-request dump directory (default $HIVE_HOME/failed_requests, else "
        "~/.hive/failed_requests) [HIVE_MCP_DUMP_DIR]",
    )
    common.add_argument("--env-file", metavar="PATH", help="read this file instead of ./.env")

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
    lst.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="show at most N (default 20)")
    lst.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)

    show = actions.add_parser(
        "show", prog=f"{PROG} dumps show", help="print one dump as pretty JSON", description="Print one dump as JSON."
    )
    show.add_argument("id", metavar="ID", help="a dump id, as printed by `dumps list`")
    show.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)

    purge = actions.add_parser(
        "purge",
        prog=f"{PROG} dumps purge",
        help="delete dumps (all, or those older than --older-than)",
        description="Delete every dump, or only those older than --older-than.",
    )
    purge.add_argument("--older-than", metavar="AGE", help="only dumps older than this: 30m, 12h, 7d, 2w, 1d12h")
    purge.add_argument("--dump-dir", help=argparse.SUPPRESS, **dump_dir)
    return parser


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        _refuse_key_flag(args_list)
        args = build_parser().parse_args(args_list)
        if args.command == "dumps":
            return _dumps(args)
        flags = {
            "model": args.model,
            "api_base": args.api_base,
            "dump_dir": args.dump_dir,
            "transport": args.transport,
            "host": args.host,
            "port": args.port,
            "heartbeat_s": args.heartbeat,
            "log_level": args.log_level,
        }
        settings = load_settings(flags, env_file=args.env_file)
    except (UsageError, SettingsError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_OK
    return serve(settings)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _refuse_key_flag(argv: Sequence[str]) -> None:
    for arg in argv:
        if arg == "--":
            break
        if arg in ("--api-key", "--key") or arg.startswith(("--api-key=", "--key=")):
            raise UsageError(
                "the API key is not accepted as a flag (command lines are visible to other users in `ps`): "
                "set HIVE_MCP_API_KEY (or OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) in the environment or in .env"
            )


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------


def configure_logging(level: str) -> None:
    """Root logger to stderr only, replacing any handler: stdout belongs to the protocol under stdio."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _route_litellm_logs(level: str) -> None:
    """Send litellm's logs through our stderr handler (call after importing litellm).

    litellm gives its loggers a handler of its own that writes records below
    WARNING to stdout, which under stdio is the protocol stream, and the records
    also propagate to the root handler, so each line showed twice. The handler
    goes; its filters (litellm's secret redaction among them) move onto the
    loggers. litellm's INFO lines (one per call) show only at --log-level DEBUG,
    or at the level LITELLM_LOG names.
    """
    wanted = os.environ.get("LITELLM_LOG", "").strip().upper()
    if wanted not in _LEVELS:
        wanted = "DEBUG" if level == "DEBUG" else "WARNING"
    for name in _LITELLM_LOGGERS:
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            for f in handler.filters:
                if f not in lg.filters:
                    lg.addFilter(f)
            lg.removeHandler(handler)
        lg.propagate = True
        lg.setLevel(wanted)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the server like Ctrl-C: a clean shutdown and exit code 0.

    The asyncio runner (stdio) and uvicorn (http/sse) install SIGINT handlers
    that shut down gracefully; hand SIGTERM to whichever is in place. With none
    (start-up, or SIGINT ignored by the parent), raise KeyboardInterrupt, which
    main() turns into a quiet exit.
    """
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def serve(settings: Settings) -> int:
    """Build the provider, the store and the server, then serve until stopped. Returns the exit code.

    For the process's main thread only: it installs signal handlers and, once
    serving is over, leaves SIGINT and SIGTERM ignored while the process exits.
    """
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _serve(settings)
    except KeyboardInterrupt:
        logger.info("hive-mcp stopped")
        return EXIT_OK
    finally:
        # On the way out (litellm's exit hooks take a moment): a repeated SIGTERM
        # or Ctrl-C would only turn a clean exit into a traceback or a kill.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serve(settings: Settings) -> int:
    from .dumps import DumpStore

    key = settings.api_key_value
    store = DumpStore(
        settings.dump_dir,
        max_count=settings.dump_max_count,
        max_bytes=settings.dump_max_bytes,
        max_age=settings.dump_max_age,
        secrets=(key,) if key else (),
    )

    from .provider import LiteLLMProvider  # imports litellm: seconds
    from .server import build_server

    _route_litellm_logs(settings.log_level)

    provider = LiteLLMProvider(
        model=settings.model, api_key=key, api_base=settings.api_base, dump_store=store
    )
    server = build_server(provider, store, default_model=settings.model, heartbeat_s=settings.heartbeat_s)

    logger.info(
        "hive-mcp %s: model %s%s, dumps in %s%s",
        __version__,
        settings.model,
        f" at {settings.api_base}" if settings.api_base else "",
        settings.dump_dir,
        f", settings from {settings.env_file}" if settings.env_file else "",
    )
    if not key:
        logger.info(
            "HIVE_MCP_API_KEY is not set: using the provider's own variable (e.g. OPENAI_API_KEY) if present; "
            "calls fail with a message naming the variable when none is"
        )

    if settings.transport == "stdio":
        logger.info("serving MCP over stdio")
    else:
        where = f"http://{_host_for_url(settings.host)}:{settings.port}"
        if settings.transport == "http":
            logger.info("serving MCP over streamable HTTP at %s/mcp", where)
        else:
            logger.info("serving MCP over HTTP+SSE (legacy) at %s/sse", where)
        if not _is_loopback(settings.host):
            logger.warning(
                "listening on %s without authentication: anyone who can reach this port can spend your API key",
                settings.host,
            )
    if settings.transport != "stdio":
        _run_http(server, settings)
    elif _CAN_CLAIM_STDIN:
        import anyio

        anyio.run(_run_stdio, server)
    else:
        server.run(transport="stdio")
    logger.info("hive-mcp stopped")
    return EXIT_OK


# ---------------------------------------------------------------------------
# HTTP transports
# ---------------------------------------------------------------------------
#
# What `MCPServer.run("streamable-http" | "sse")` does (build the Starlette app,
# serve it with uvicorn), with three differences: uvicorn's logs go through our
# stderr handler at our level (uvicorn would send its access log to stdout);
# a stuck connection cannot hold shutdown for more than GRACEFUL_SHUTDOWN_S; and
# responses left open or answered twice at shutdown are tidied up (see
# `_complete_responses`), which otherwise logged errors and, for SSE, a traceback.

GRACEFUL_SHUTDOWN_S = 5.0


def _run_http(server: Any, settings: Settings) -> None:
    import anyio
    import uvicorn

    if settings.transport == "http":
        app = server.streamable_http_app(host=settings.host)  # at /mcp
    else:
        app = server.sse_app(host=settings.host)  # at /sse and /messages/
    config = uvicorn.Config(
        _complete_responses(app),
        host=settings.host,
        port=settings.port,
        log_config=None,  # propagate to the root logger: stderr, our format
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    anyio.run(uvicorn.Server(config).serve)


def _complete_responses(app: Any) -> Any:
    """Make every HTTP response end properly, exactly once.

    At shutdown the SDK's event streams end without the final body message, and
    uvicorn logged "ASGI callable returned without completing response"; the SSE
    endpoint then also returned a second, empty `Response()`, and uvicorn raised
    "Expected ASGI message 'http.response.body'" with a traceback. Here a second
    response is dropped and any response left open is ended, so the client sees
    its stream close cleanly.
    """
    import anyio

    end = {"type": "http.response.body", "body": b"", "more_body": False}

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        started = complete = False

        async def send_once(message: dict[str, Any]) -> None:
            nonlocal started, complete
            kind = message.get("type")
            if kind == "http.response.start":
                if started:
                    return  # a second response to the same request
                started = True
            elif kind == "http.response.body":
                if complete or not started:
                    return
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await app(scope, receive, send_once)
        finally:
            if started and not complete:
                with anyio.CancelScope(shield=True):
                    try:
                        await send(end)
                    except Exception:  # noqa: BLE001 - the client is already gone
                        pass

    return guarded


# ---------------------------------------------------------------------------
# stdio that a signal can stop
# ---------------------------------------------------------------------------
#
# The SDK's stdio transport reads stdin with a blocking readline in an anyio
# worker thread, which cannot be cancelled: after Ctrl-C or SIGTERM the server
# would wait for the client's next line or for EOF before exiting. So we hand
# `stdio_server` our own stdin: a daemon thread reading a private duplicate of
# fd 0 with os.read (no buffered-IO lock to trip over at interpreter exit).
# stdout is still claimed by the SDK, which points fd 1 at stderr while serving,
# so stray prints cannot corrupt the protocol. The rest mirrors
# `MCPServer.run_stdio_async`.

try:
    import fcntl

    _CAN_CLAIM_STDIN = True
except ImportError:  # Windows: the SDK's own stdio path
    _CAN_CLAIM_STDIN = False


async def _run_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    fd = _claim_stdin()
    async with stdio_server(stdin=_stdin_lines(fd)) as (read_stream, write_stream):  # type: ignore[arg-type]
        low = server._lowlevel_server  # as run_stdio_async does
        await low.run(read_stream, write_stream, low.create_initialization_options())


def _claim_stdin() -> int:
    """A private duplicate of fd 0 for the protocol; fd 0 itself then reads /dev/null.

    So nothing else in the process (or a child it starts) can read protocol bytes.
    If fd 0 cannot be duplicated, it is read in place.
    """
    try:
        private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        return 0
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(devnull, 0)
        finally:
            os.close(devnull)
    except OSError:
        pass
    return private


async def _stdin_lines(fd: int) -> AsyncIterator[str]:
    """The lines of `fd`, read by a daemon thread; cancelling the reader never waits for input."""
    import anyio
    import anyio.from_thread
    import anyio.lowlevel

    send, receive = anyio.create_memory_object_stream[str](16)
    token = anyio.lowlevel.current_token()

    def deliver(line: bytes) -> None:
        anyio.from_thread.run(send.send, line.decode("utf-8", errors="replace"), token=token)

    def pump() -> None:
        buffer = b""
        try:
            while chunk := _read_quietly(fd):
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    deliver(line + b"\n")
            if buffer:
                deliver(buffer)
        except BaseException:  # noqa: BLE001 - the loop is gone or the reader stopped: nobody is listening
            return
        try:
            anyio.from_thread.run_sync(send.close, token=token)
        except BaseException:  # noqa: BLE001
            pass

    threading.Thread(target=pump, name="hive-mcp-stdin", daemon=True).start()
    async with receive:
        async for line in receive:
            yield line


def _read_quietly(fd: int) -> bytes:
    """os.read, with a read error taken as end of input."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# ---------------------------------------------------------------------------
# dumps list | show | purge
# ---------------------------------------------------------------------------


def _dumps(args: argparse.Namespace) -> int:
    from .dumps import DumpCorrupt, DumpLookupError, DumpStore

    settings = load_settings({"dump_dir": args.dump_dir}, env_file=args.env_file, only=("dump_dir",), export=False)
    store = DumpStore(settings.dump_dir, max_count=None, max_bytes=None, max_age=None)
    try:
        if args.dumps_command == "list":
            return _dumps_list(store, args)
        if args.dumps_command == "show":
            return _dumps_show(store, args.id)
        return _dumps_purge(store, args.older_than)
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
    header = ("TIME", "ERROR", "OUTCOME", "ATTEMPTS", "MODEL", "SIZE", "ID")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
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


def _dumps_purge(store: Any, older_than: str | None) -> int:
    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    removed = store.purge(age)
    noun = "dump" if removed == 1 else "dumps"
    scope = f" older than {older_than}" if older_than else ""
    print(f"removed {removed} {noun}{scope} from {store.directory}")
    return EXIT_OK
