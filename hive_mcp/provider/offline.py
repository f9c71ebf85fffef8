"""litellm, imported with its network fetches off: every provider module takes it from here.

The settings must be in the environment before litellm's import (its import
fetches the model cost map otherwise); `setdefault` leaves an operator's choice alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
# The Router's Redis (cooldowns and usage shared between processes) goes through litellm's circuit breaker,
# read from these at import. Its defaults (open after five failures spanning 5 s, then keep Redis out for
# 60 s) let a frozen Redis cost every call its timeout and hold sharing back for a minute after Redis is back.
# Here the first failure opens it and it lets Redis in again after 1 s, as the state store's probe does. A
# process's first try after Redis returns may still fail (a connection from before, or a try made just before
# it answered), opening it for one more second; and a process shares a cooldown only once its breaker and
# the other's are both closed: cooldown sharing between instances resumes within 5 s with room to spare.
os.environ.setdefault("REDIS_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1")
os.environ.setdefault("REDIS_CIRCUIT_BREAKER_TIMEOUT_MIN_DURATION", "0")
os.environ.setdefault("REDIS_CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "1")

import litellm  # noqa: E402

litellm.suppress_debug_info = True  # it prints help banners to stdout, which stdio MCP owns

__all__ = ["litellm"]
