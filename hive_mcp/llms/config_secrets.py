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

_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential|authorization|cookie)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\s+(\S.*)$")
"""An Authorization header's value: a scheme (`Bearer`, `Basic`), then the credential an upstream may echo alone."""
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
            found.update(_parts(key, value))
        if _URL.match(value):
            found.update(url_secrets(value))
    return found


def _parts(key: str, value: str) -> set[str]:
    """What a header's value holds that may be echoed without the rest: the credential after an authorization
    scheme, each cookie's value."""
    if key.lower() == "cookie":
        return {v.strip() for _, _, v in (c.partition("=") for c in value.split(";")) if v.strip()}
    scheme = _SCHEME.match(value) if "authorization" in key.lower() else None
    return {scheme.group(1)} if scheme else set()
