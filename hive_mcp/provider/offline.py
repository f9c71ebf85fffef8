"""litellm, imported with its network fetches off: every provider module takes it from here.

The settings must be in the environment before litellm's import (its import
fetches the model cost map otherwise); `setdefault` leaves an operator's choice alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import litellm  # noqa: E402

litellm.suppress_debug_info = True  # it prints help banners to stdout, which stdio MCP owns

__all__ = ["litellm"]
