"""`python -m hive_mcp`, and the `hive-mcp` command (`main`): stop signals are handled from its first statement
(`stopping.install`), before the command line, the settings and the server load (a second or more on a small
machine), during which a SIGTERM would otherwise kill the process and a Ctrl-C print a traceback."""

import sys

from .stopping import install


def main() -> int:
    install()
    from .cli import main as command

    return command()


if __name__ == "__main__":
    sys.exit(main())
