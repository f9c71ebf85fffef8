"""The MCP layer: LLM completion tools, the model catalogue and failed-request resources over MCP.

It talks only to the `LLMProvider` interface, the `DumpStore`, the model catalogue
and the conversation store; it never imports litellm, so every provider detail
(retries, dumps, key handling, token counts, context windows) stays behind them.
`build_server(provider, store, default_model=..., limits=..., catalogue=..., conversations=...)` returns an
`MCPServer`; run it with `server.run(transport=..., host=..., port=...)`.

Modules, leaf first: constants (URIs, list limits, intervals, the logger) and
errors (one-line error text); args (wire models of the arguments and their
validation) and results (wire models of the results); catalogue (the model
catalogue as clients see it); schema (the compact tool
schemas); relay (heartbeats and streamed progress); notify (change
notifications); resources and tools (the handlers); conversations (continued
and forked calls) and conversation_views (their tool and resources); paging (answers too big for one
reply, as `hive://results/{id}` and the read_result tool); server (`build_server`).
"""

from __future__ import annotations

from .args import ChatMessage, CompleteArgs, ListFailedRequestsArgs, StreamArgs, ToolSpec
from .model_list import ModelList
from .constants import DUMP_URI_PREFIX, DUMP_URI_TEMPLATE, INDEX_URI, MODEL_URI_TEMPLATE, MODELS_URI, dump_uri, model_uri
from .results import CompletionResult, FailedRequestPage, FailedRequestSummary
from .server import build_server

__all__ = [
    "DUMP_URI_PREFIX",
    "DUMP_URI_TEMPLATE",
    "INDEX_URI",
    "MODELS_URI",
    "MODEL_URI_TEMPLATE",
    "ModelList",
    "ChatMessage",
    "CompleteArgs",
    "StreamArgs",
    "CompletionResult",
    "FailedRequestPage",
    "FailedRequestSummary",
    "ListFailedRequestsArgs",
    "ToolSpec",
    "build_server",
    "dump_uri",
    "model_uri",
]
