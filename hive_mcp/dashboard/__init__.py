"""The dashboard: failed requests (and, once configured, spend and models) as a web page and as an MCP App.

`data` computes what is shown from the dump store's own listing; `web` serves it
under /dashboard (login, cookie session, JSON endpoint, deleting a dump); `app`
registers the same page as the `ui://hive/dashboard` MCP App resource with its
`dashboard` tool. The page (`page.html`, `page.js`, `page.css`) is ours alone: no
CDN, no third-party code.
"""

from __future__ import annotations

from .data import DashboardData, DashboardQuery, QueryError, Sources, build, parse_query

__all__ = ["DashboardData", "DashboardQuery", "QueryError", "Sources", "build", "parse_query"]
