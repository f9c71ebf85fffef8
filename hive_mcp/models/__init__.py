"""Models: the LiteLLM-format config (groups, deployments, aliases, fallbacks). Free of MCP."""

from .config import ConfigError, ModelsConfig, load_config

__all__ = ["ConfigError", "ModelsConfig", "load_config"]
