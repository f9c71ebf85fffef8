"""The one refusal of a call's `files`: a line naming the field, raised before any request is sent."""

from __future__ import annotations

from ..refusal import Refusal

__all__ = ["FilesRefused"]


class FilesRefused(Refusal, ValueError):
    """The call's `files` cannot be sent as asked. The message is one line starting `files: `."""

    field = "files"

    def __init__(self, why: str) -> None:
        super().__init__(f"{self.field}: {why}")
