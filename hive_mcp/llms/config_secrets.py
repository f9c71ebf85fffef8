"""Which values of a LiteLLM config are credentials: kept out of every log, dump and page (`ModelsConfig.secrets`).

A leaf of `llms`: the config loader reads it, and it reads nothing of the loader.
"""

from __future__ import annotations

import re
from typing import Any

from ..redact import url_secrets

__all__ = ["ENV_PREFIX", "config_secrets"]

ENV_PREFIX = "os.environ/"
"""How a config names an environment variable in place of a value (LiteLLM's own form)."""

_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def config_secrets(value: Any, key: str = "") -> set[str]:
    """Every credential in the config: values under key-like names, and what URLs carry (`url_secrets`); the
    proxy's own `general_settings` (its master key, its database URL) too, which is read unresolved."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= config_secrets(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found |= config_secrets(v, key)
    elif isinstance(value, str) and value and not value.startswith(ENV_PREFIX):
        if _SECRET_KEY.search(key) and not key.endswith(("_env", "_name", "_file", "_path")):
            found.add(value)
        if _URL.match(value):
            found.update(url_secrets(value))
    return found
