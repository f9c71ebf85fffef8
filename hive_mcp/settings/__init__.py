"""Configuration: command-line flags, the environment and a `.env` file, in that order.

Each setting is declared once, as a field of `Settings`: its type and checks,
its default, its help text and, if it has one, its flag (`setting(...)`). The
environment name is `HIVE_MCP_` + the field name in capitals (pydantic-settings'
`env_prefix`); `hive_mcp.cli` builds the flags and the `--help` epilog from
`SETTINGS_FIELDS`, a view of the same declarations.

Precedence, per setting: a flag, else the real environment (`HIVE_MCP_*`), else the `.env`
file (default `./.env`), else the built-in default; an empty value counts as unset. The
environment and the `.env` entries reach pydantic-settings as mappings (`load_settings`' arguments).

Secrets (`HIVE_MCP_API_KEY`, `..._AUTH_TOKEN`, `..._STATE_PASSWORD`) come from the environment
or `.env` only, never a flag (`ps` shows command lines), and are kept as `SecretStr`.

`.env` also carries the provider's own variables (`OPENAI_API_KEY`, `LITELLM_*`, ...),
which litellm reads from `os.environ`: `load_settings()` exports each non-`HIVE_MCP_*`
entry not already set there (the real environment wins), so it runs before litellm is imported.

This package imports neither litellm nor mcp: `hive-mcp --help` and `hive-mcp dumps ...` stay fast.
"""

from .fields import Settings, SettingsError, SettingSpec
from .load import SETTINGS_FIELDS, load_settings

__all__ = ["SETTINGS_FIELDS", "Settings", "SettingSpec", "SettingsError", "load_settings"]
