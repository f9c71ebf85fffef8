"""The MCP Bundle's entry point: hive-mcp over stdio, as the desktop client starts it."""

import sys

from hive_mcp.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
