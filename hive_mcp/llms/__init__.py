"""The LLMs on offer: the LiteLLM-format config (groups, deployments, aliases, fallbacks) and the catalogue
interface the MCP layer reads (`catalogue`). Free of MCP and litellm."""

from .config import ConfigError, ModelsConfig, load_config

__all__ = ["ConfigError", "ModelsConfig", "load_config"]
