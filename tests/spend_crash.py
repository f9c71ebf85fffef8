"""A server process killed between settling a call and releasing its hold: `python -m tests.spend_crash KIND
WHERE PREFIX POINT`.

KIND is `sqlite` (WHERE a database file) or `redis` (WHERE a URL, PREFIX its key prefix). With the hive home
from HIVE_HOME (where the spend journal lives), it reserves two calls under an overall daily budget of $1,
prints `reserved` and the second one's lease expiry, then settles the first (cost 1000 micro-USD) and kills itself with SIGKILL at POINT:
`before` (the backend not asked yet) or `after` (the backend took the call, its journal entry not yet closed).
The second call is never settled: a call in flight when the process died.
"""

from __future__ import annotations

import os
import signal
import sys
import anyio

from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.base import LLMResponse
from hive_mcp.spend import Budgets, CallRecord, Reservation, SQLiteBackend, Spend
from hive_mcp.spend.ledger import Backend
from tests.conftest import MODEL

LEASE_S = 30.0


def crashing(base: type[Backend], point: str) -> type[Backend]:
    class Crashing(base):  # type: ignore[valid-type, misc]
        def settle(self, r: Reservation, record: CallRecord) -> None:
            if point == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            super().settle(r, record)
            os.kill(os.getpid(), signal.SIGKILL)

    return Crashing


async def main(kind: str, where: str, prefix: str, point: str) -> None:
    backend: Backend
    if kind == "sqlite":
        backend = crashing(SQLiteBackend, point)(where)
    else:
        from hive_mcp.spend.redis_backend import RedisBackend

        backend = crashing(RedisBackend, point)(where, prefix=prefix)
    provider = LiteLLMProvider(model=MODEL, api_key="sk-unused", api_base="http://127.0.0.1:9")
    spend = Spend(backend, Budgets.from_settings(day=1.0, month=None, section=None), provider)
    prompt = [{"role": "user", "content": "hello"}]
    settled = await spend.reserve("local", MODEL, prompt, system="", max_tokens=10, deadline=LEASE_S)
    in_flight = await spend.reserve("local", MODEL, prompt, system="", max_tokens=10, deadline=LEASE_S)
    print("reserved", in_flight.reservation.expires.isoformat(), flush=True)
    response = LLMResponse(content="hi", model=MODEL, input_tokens=10, output_tokens=5, cost_usd=0.001)
    await spend.settle(settled, response)
    await anyio.to_thread.run_sync(spend.settled)  # the backend's write follows the answer: killed in there
    print("not killed", flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
