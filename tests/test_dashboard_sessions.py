"""Dashboard sign-ins kept in a SQLite file another process has locked: a sign-in is refused in one line naming
the file, a sign-out still ends the session, and the outage is told once, and its end (a real file, a second connection
holding its write lock)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx
import pytest

from hive_mcp.dashboard.sessions import Sessions
from hive_mcp.dashboard.web import COOKIE, dashboard_app
from hive_mcp.dumps import DumpStore
from tests.dashboard_dumps import BASE, ORIGIN, TOKEN, sign_in, verify


async def test_a_locked_session_file_refuses_a_sign_in_in_one_line_and_a_sign_out_still_ends_the_session(
    store: DumpStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.sqlite3"
    app = dashboard_app(store, verify_token=verify, sessions=Sessions(path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        value = (await sign_in(web)).cookies[COOKIE]
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.WARNING):
            refused = await web.post("/dashboard/login", data={"token": TOKEN}, headers=ORIGIN)
            out = await web.post("/dashboard/logout", headers=ORIGIN)
        locker.execute("ROLLBACK")
        locker.close()
        copy = await web.get("/dashboard/data", cookies={COOKIE: value})  # a copy of the signed-out cookie
        other = Sessions(path)  # another worker on the same file
        await sign_in(web)  # the next write ends what the outage held back
    assert refused.status_code == 503 and str(path) in refused.text and "set-cookie" not in refused.headers
    assert out.status_code == 503 and "not ended everywhere" in out.text
    assert f'{COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert copy.status_code == 401
    assert other.caller(value) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and str(path) in warnings[0] and "again" in warnings[1], warnings  # down, then up
    assert "Traceback" not in caplog.text
