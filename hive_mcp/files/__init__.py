"""A call's `files`: read from the roots a caller may read, never the credentials, sized to the model.

Transport-free: it knows neither MCP nor litellm. The entry point is `attach_files`; the caller brings the
token counter of the target model (`count`), the room the window leaves, and the roots (`FileRoots`).
"""

from .attach import DEFAULT_FIT, IMAGE_TOKENS_UNKNOWN, Attached, FileAccess, FileLimits, Fit
from .attach import SentFile, SkippedFile, attach_files
from .pool import CountPool
from .refusal import FilesRefused
from .roots import ROOTS_SETTING, FileRoots, Root, parse_roots

__all__ = [
    "DEFAULT_FIT", "IMAGE_TOKENS_UNKNOWN", "ROOTS_SETTING", "Attached", "CountPool", "FileAccess", "FileLimits",
    "FileRoots", "FilesRefused", "Fit", "Root", "SentFile", "SkippedFile", "attach_files", "parse_roots",
]  # fmt: skip
