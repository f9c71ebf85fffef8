"""hive-mcp: LLM completion behind the Model Context Protocol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hive-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
