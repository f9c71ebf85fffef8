"""Defaults that more than one module needs: the settings declare them as their defaults, and the
parts built without settings (a provider, `Limits`, `build_server`, a conversation store in a
test or a script) fall back to the same values. A leaf: it imports nothing."""

from __future__ import annotations

MIB = 1024 * 1024

DEFAULT_DEADLINE_S = 600.0
"""Seconds a call may take, retries included."""
DEFAULT_HEARTBEAT_S = 10.0
"""The longest a waiting call goes without a progress notification, when its request carries a progress token."""
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_QUEUE_TIMEOUT_S = 30.0
DEFAULT_MAX_INPUT_BYTES = MIB
DEFAULT_MAX_FILE_BYTES = MIB
"""The largest file a call may attach (`files`)."""
DEFAULT_MAX_FILES_BYTES = 20 * MIB
"""The most bytes of files one call may attach, all together."""

CONVERSATION_TTL_S = 3 * 3600
CONVERSATION_MAX = 1000
CONVERSATION_MAX_TURNS = 200
CONVERSATION_MAX_BYTES = 2 * MIB
