"""Known dumps for the dashboard tests, written through the real DumpStore, and how those tests sign in."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump

BASE = "http://127.0.0.1:8000"
"""Where the tests' dashboard app is reached (in process, through httpx's ASGI transport)."""
DASHBOARD_TOOL = "dashboard"
TOKEN = "dash-token-0123456789"
ORIGIN = {"origin": BASE}


def verify(token: str) -> str | None:
    """The caller TOKEN names: `local` here, who sees every dump, as the dashboard's own tests want."""
    return "local" if token == TOKEN else None


async def sign_in(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/dashboard/login", data={"token": TOKEN}, headers=ORIGIN)

CATEGORIES = ("rate_limit", "rate_limit", "transient", "auth", "timeout", "rate_limit", "connection")
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "groq/llama-3.1-8b")


def failure(when: datetime, category: str, model: str, *, attempts: int = 1, content: str = "hello") -> FailureDump:
    """A dump whose attempts wait 0.5 s, 1 s, 2 s ... and end in `category`."""
    records = [
        AttemptRecord(
            time=when - timedelta(seconds=attempts - i),
            error_type=category,
            status=429 if category == "rate_limit" else None,
            message=f"attempt {i + 1} failed",
            delay_s=0.5 * 2**i if i < attempts - 1 else 0.0,
        )
        for i in range(attempts)
    ]
    return FailureDump(
        timestamp=when,
        model=model,
        error_type=category,
        outcome="gave_up",
        attempts=records,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
        estimated_tokens=12,
        token_estimate_method="chars/4",
    )


def write_mixed(store: DumpStore, now: datetime, n: int, *, spread: timedelta = timedelta(hours=20)) -> list[str]:
    """`n` dumps of mixed categories and models, evenly spread over `spread` before `now`; their ids."""
    ids = []
    for i in range(n):
        when = now - spread * (i + 1) / (n + 1)
        dump_id = store.write(failure(when, CATEGORIES[i % len(CATEGORIES)], MODELS[i % len(MODELS)], attempts=1 + i % 3))
        assert dump_id is not None
        ids.append(dump_id)
    return ids
