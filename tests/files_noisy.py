"""A counter that prints, and a script that reads files through the process pool with it: under stdio, stdout
is the protocol's, so nothing a worker process prints may reach it (tests/test_files.py runs this)."""

from __future__ import annotations

import sys
from pathlib import Path


def noisy_count(text: str) -> int:
    print("a worker printed this")
    return len(text) // 4


if __name__ == "__main__":
    from hive_mcp.files import CountPool, FileRoots, attach_files, parse_roots

    root = Path(sys.argv[1])
    pool = CountPool(workers=2, min_bytes=0)
    try:
        roots = FileRoots.configured(parse_roots(str(root)), "stdio", root)
        result = attach_files(["*"], caller="local", roots=roots, count=noisy_count, room=None, pool=pool)
        assert pool.used and len(result.sent) == 4, result
    finally:
        pool.close()
    sys.stderr.write("done\n")
