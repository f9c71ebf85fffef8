"""The files step: the paths and globs a call names, read from the roots its caller may read, counted for its
model and sent as one user message before the call's own messages (`hive_mcp.files` decides what may be read).

It runs after admission (the model is resolved: its window and whether it takes images) and before the
conversation step, so the files' text is part of the turn a conversation stores (a continuation does not read
them again) and of what metering reserves. A refusal (`FilesRefused`: a path outside the roots, the size
limits, the window unless `fit` is `truncate`) comes before any upstream request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import anyio

from ..files import Attached, FileAccess, FileRoots, attach_files
from ..llms.catalogue import Catalogue
from ..provider.base import LLMProvider, ModelRef
from .call import Call, Outcome
from .chain import Next

__all__ = ["Files"]


OFF = FileAccess(FileRoots((), off="files are off on this server"))


@dataclass
class Files:
    provider: LLMProvider
    catalogue: Catalogue
    access: FileAccess | None = None
    """Where calls may read, within which limits (None: nowhere)."""

    async def __call__(self, call: Call, next: Next) -> Outcome:
        if not call.files:
            return await next(call)
        ref = call.ref
        assert ref is not None, "admission resolves the model first"
        await self.provider.ready()  # counting reads the provider: not in a worker thread held by a load
        attached = await anyio.to_thread.run_sync(lambda: self.attach(call, ref), abandon_on_cancel=True)
        message = attached.message()
        sent = replace(call, messages=(message, *call.messages)) if message is not None else call
        return replace(await next(sent), files=attached)

    def attach(self, call: Call, ref: ModelRef) -> Attached:
        """The files of `call`, sized to what its model's window leaves. Blocking."""
        room = None
        if ref.window is not None:
            system = [{"role": "system", "content": call.system}] if call.system else []
            asked = self.provider.count_tokens([*system, *call.messages], ref.name) or 0
            room = max(0, ref.window - call.max_tokens - asked)

        def count_image(url: str) -> int | None:
            image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            return self.provider.count_tokens([image], ref.name)

        a = self.access or OFF
        return attach_files(
            call.files, caller=call.caller, roots=a.roots, count=self.provider.text_counter(ref.name), room=room,
            fit=call.fit, vision=self.vision(ref), limits=a.limits, count_image=count_image, secrets=a.secrets,
            pool=a.pool,
        )  # fmt: skip

    def vision(self, ref: ModelRef) -> bool:
        """Whether the model takes image parts, as its catalogue entry says (unsaid: it does not)."""
        return any(g.supports_vision for g in self.catalogue.groups() if ref.group in (g.name, *g.aliases))
