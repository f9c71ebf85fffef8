"""Imported first in the file-counting processes (the forkserver and, through it, each worker): from then on
what the process prints goes to stderr. Under stdio, the server's stdout carries the protocol, and these
processes inherit it: a line printed by litellm or by a counter would corrupt a message.

Importing it is the point: it changes this process's file descriptor 1. Nothing else imports it.
"""

from __future__ import annotations

import os
import sys

sys.stdout.flush()
os.dup2(2, 1)
sys.stdout = sys.stderr
