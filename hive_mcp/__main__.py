"""`python -m hive_mcp`: the same as the `hive-mcp` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
