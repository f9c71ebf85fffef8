"""The server's logs: every line to stderr (under stdio, stdout belongs to the protocol), litellm's
loggers routed through the same handler, every secret the server was given redacted from them, and
no caller's message quoted in them, at any level: not by the SDK (`_MessagesUnquoted`), nor by litellm
unless LITELLM_LOG=DEBUG asks for its own debug lines (`route_litellm_logs`)."""

from __future__ import annotations

import logging
import os
import sys

import anyio

__all__ = ["configure_logging", "redact_logs", "route_litellm_logs"]


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
    sdk = (
        (_SSE_LOGGER, _UnparsedMessage), (_STREAMABLE_LOGGER, _SessionEndedFirst),
        *((n, _MessagesUnquoted) for n in _QUOTING),
    )  # fmt: skip
    for name, kind in (*sdk, *((n, _LitellmHandlersOff) for n in _LITELLM_LOGGERS)):
        lg = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in lg.filters):
            lg.addFilter(kind())


_SSE_LOGGER = "mcp.server.sse"
_SSE_UNPARSED = "Failed to parse message"
"""What the SDK's legacy SSE transport logs, with `logger.exception`, for a POSTed message it cannot parse."""


class _UnparsedMessage(logging.Filter):
    """The SDK's record of a POSTed message it could not parse, made one WARNING line without its traceback.

    The caller has its 400 ("Could not parse message") already; the traceback's pydantic error quotes the
    start of the body, which is a caller's prompt. The line says which failure it was (not JSON, or JSON
    but not a JSON-RPC message), nothing of the body. A filter on the SDK's logger rather than our own
    handling of the message path: the SDK keeps answering the POST as it does, and only its log line changes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _SSE_UNPARSED or not record.exc_info:
            return True
        errors = getattr(record.exc_info[1], "errors", None)
        kinds = {e.get("type") for e in errors(include_input=False)} if callable(errors) else set()
        record.msg = "a message POSTed to the legacy SSE endpoint was %s: answered 400"
        record.args = ("not valid JSON" if "json_invalid" in kinds else "not a JSON-RPC message",)
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = None
        return True


_STREAMABLE_LOGGER = "mcp.server.streamable_http"
_POST_FAILED = "Error handling POST request"
"""What the SDK's streamable HTTP transport logs, with `logger.exception`, for a POST it failed to handle."""


class _SessionEndedFirst(logging.Filter):
    """The SDK's record of a POSTed message it could not hand on because its session had ended, made one DEBUG
    line without its traceback (and none below DEBUG).

    A client that gives up on a call sends `notifications/cancelled`, then DELETEs its session; a DELETE that
    lands between the 202 for the notification and its hand-over closes the stream it is handed to. A client
    closing its session is normal, and the message has no session left to reach. Any other failure of a POST
    keeps the SDK's record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        closed = (anyio.ClosedResourceError, anyio.BrokenResourceError)
        if record.msg != _POST_FAILED or not record.exc_info or not isinstance(record.exc_info[1], closed):
            return True
        record.msg, record.args = "a message POSTed as its session ended was dropped (its client closed it)", ()
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_QUOTING = {
    "mcp.server.sse": (
        "Received JSON: ", "Validated client message: ", "Sending session message to writer: ",
        "Sending message via SSE: ",
    ),
    "mcp.shared.jsonrpc_dispatcher": ("transport yielded exception: ",),
    "mcp.server.runner": ("dropped a frame received before the first request: ",),
    "sse_starlette.sse": ("chunk: ",),
}  # fmt: skip
"""The debug lines of the SDK and its event streams that quote a message, as each logger's lines begin: the
legacy SSE transport's of every message POSTed to it and sent on it; the dispatcher's of a message it could not
read (pydantic's report, which quotes it); the runner's of a message come before the first request;
sse-starlette's of every event it sends."""


class _MessagesUnquoted(logging.Filter):
    """One of the lines in `_QUOTING` keeps its beginning and the kind of what it quoted, not the quote: a
    message is a caller's data (a prompt, a reply), which no log level shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not isinstance(msg, str):
            return True
        for start in _QUOTING.get(record.name, ()):
            if msg.startswith(start):
                args = record.args if isinstance(record.args, tuple) else ()
                kind = type(args[0]).__name__ if len(args) == 1 else "a message"
                record.msg, record.args = f"{start}%s (not shown: a caller's data)", (kind,)
                record.exc_info = record.exc_text = None
                break
        return True


_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def route_litellm_logs(level: str) -> None:
    """Send litellm's logs through our stderr handler (call after importing litellm).

    litellm gives its loggers a handler of its own that writes records below
    WARNING to stdout, which under stdio is the protocol stream, and the records
    also propagate to the root handler, so each line showed twice. The handler
    goes; its filters (litellm's secret redaction among them) move onto the
    loggers. litellm's INFO lines (one per call) show only at --log-level DEBUG,
    or at the level LITELLM_LOG names. Its DEBUG lines quote every request sent
    upstream and every reply, a caller's data: they show only when LITELLM_LOG
    names DEBUG.
    """
    wanted = os.environ.get("LITELLM_LOG", "").strip().upper()
    if wanted not in _LEVELS:
        wanted = "INFO" if level == "DEBUG" else "WARNING"
    for name in _LITELLM_LOGGERS:
        lg = logging.getLogger(name)
        _own_handlers_off(lg)
        lg.setLevel(wanted)


def _own_handlers_off(lg: logging.Logger) -> None:
    """`lg`'s own handlers taken off, their filters moved onto it, its records propagating to the root's."""
    for handler in list(lg.handlers):
        for f in handler.filters:
            if f not in lg.filters:
                lg.addFilter(f)
        lg.removeHandler(handler)
    lg.propagate = True


class _LitellmHandlersOff(logging.Filter):
    """On litellm's loggers from `configure_logging` on, so from before litellm is imported.

    The import gives each logger litellm's handler (records below WARNING to stdout) and, at DEBUG, logs a
    dozen lines through it before `route_litellm_logs` can run. A logger's filters run before its handlers
    are called: each record first takes any handler off the three loggers (`_own_handlers_off`), and so
    reaches only the root's, on stderr. It stays after the import: a handler litellm adds later goes too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _LITELLM_LOGGERS:
            _own_handlers_off(logging.getLogger(name))
        return True



def redact_logs(secrets: tuple[str, ...]) -> None:
    """Every handler of the root logger (stderr, see `configure_logging`) redacts `secrets` and key shapes,
    from whichever logger a line comes. Called again, it replaces its filter rather than adding one."""
    from .redact import RedactingFilter

    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(secrets))

