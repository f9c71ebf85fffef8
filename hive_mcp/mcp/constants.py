"""Names and numbers the MCP layer's modules share: a leaf, so none of them imports another for these."""

from __future__ import annotations

import logging
from urllib.parse import quote

logger = logging.getLogger("hive_mcp.server")

INDEX_URI = "hive://failed-requests"
DUMP_URI_PREFIX = INDEX_URI + "/"
DUMP_URI_TEMPLATE = DUMP_URI_PREFIX + "{id}"
MODELS_URI = "hive://models"
MODEL_URI_PREFIX = MODELS_URI + "/"
MODEL_URI_TEMPLATE = MODEL_URI_PREFIX + "{name}"

CONVERSATIONS_URI = "hive://conversations"
CONVERSATION_URI_PREFIX = CONVERSATIONS_URI + "/"
CONVERSATION_URI_TEMPLATE = CONVERSATION_URI_PREFIX + "{id}"

RESOURCE_NOT_FOUND_LEGACY = -32002
"""Resource-not-found in the 2025-11-25 spec. 2026-07-28 (SEP-2164) uses -32602, as the SDK does."""

DEFAULT_RESOURCE_PAGE_SIZE = 50
"""Dumps per `resources/list` page. Only the files on a page are opened, so a page costs the same at 10,000 dumps."""

PROGRESS_INTERVAL_S = 0.01
"""The least time between two `stream_complete` notifications that carry text, while the server keeps up
(see `relay.Pacer`)."""
MOST_PROGRESS_INTERVAL_S = 0.2
"""The most it grows to while the server is behind: text still reaches a reader five times a second."""


MAX_ERROR_CHARS = 600
MAX_REFUSAL_CHARS = 4000
"""A refusal's line may name what the call could have asked for (the catalogue's names)."""
NOTIFY_TIMEOUT_S = 5.0


def dump_uri(dump_id: str) -> str:
    """The resource URI of one failure dump."""
    return DUMP_URI_PREFIX + dump_id


def model_uri(name: str) -> str:
    """The resource URI of one model group (the name percent-encoded, as the URI template expands it)."""
    return MODEL_URI_PREFIX + quote(name, safe="")


def conversation_uri(conversation_id: str) -> str:
    """The resource URI of one conversation."""
    return CONVERSATION_URI_PREFIX + conversation_id
