"""The page and its own script and style, read from the package and filled in for a mode.

Web mode links `page.js` and `page.css` (served beside the page, so the page's
Content-Security-Policy can forbid inline code); app mode inlines both, because a
host renders a `ui://` resource as one self-contained document.
"""

from __future__ import annotations

import functools
import html
import re
from importlib.resources import files
from typing import Literal

ASSETS: dict[str, str] = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}


@functools.cache
def asset(name: str) -> str:
    """The text of one packaged file (page.html, page.js, page.css)."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def page(
    mode: Literal["web", "app"], *, endpoint: str = "/dashboard/data", static: str = "/dashboard/static",
    signout: str | None = None,
) -> str:
    """The page for `mode`; with `signout` (the web page of a signed-in caller), a sign-out form posting there."""
    text = asset("page.html")
    text = text.replace("{{mode}}", mode).replace("{{endpoint}}", html.escape(endpoint, quote=True))
    if signout is None:
        text = re.sub(r"<!--signout-->.*?<!--/signout-->", "", text, flags=re.S)
    else:
        text = text.replace("{{signout}}", html.escape(signout, quote=True))
    if mode == "app":
        # "</" cannot end the inlined code early: neither file contains "</script" or "</style".
        text = re.sub(r"<!--style-->.*?<!--/style-->", lambda _: f"<style>\n{asset('page.css')}</style>", text, flags=re.S)
        text = re.sub(r"<!--script-->.*?<!--/script-->", lambda _: f"<script>\n{asset('page.js')}</script>", text, flags=re.S)
    return text.replace("{{static}}", html.escape(static, quote=True))
