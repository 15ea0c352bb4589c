"""The health agent on a real socket (loopback): one line per connection, bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hactl.minion.health_agent import MAX_CONNECTIONS, AgentPolicy, HealthAgent


async def _read(port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        return await asyncio.wait_for(reader.read(), 2)
    finally:
        writer.close()


async def test_agent_answers_from_the_latest_report_and_survives_a_flood() -> None:
    """Synced -> "up"; desynced -> "down #..."; a peer that sends junk and never reads, and
    200 parallel connections, leave it answering."""
    state: dict[str, Any] = {
        "snap": {"local": {"running": True, "synced": True}},
        "at": time.monotonic(),
    }
    agent = HealthAgent(AgentPolicy("127.0.0.1", 0), lambda: (state["snap"], state["at"]))
    await agent.start()  # port 0: a free one
    assert agent._server is not None
    port = agent._server.sockets[0].getsockname()[1]
    try:
        assert await _read(port) == b"up\n"
        state["snap"] = {
            "local": {"running": True, "synced": False, "cluster_status": "non-Primary"}
        }
        assert await _read(port) == b"down #not Synced (non-Primary)\n"
        # junk in, nothing read back by the peer: the agent never reads input
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"maint\n" * 10_000)
        answers = await asyncio.gather(*(_read(port) for _ in range(200)), return_exceptions=True)
        ok = [a for a in answers if isinstance(a, bytes) and a.startswith(b"down")]
        assert len(ok) + agent.refused >= 200 and len(ok) >= MAX_CONNECTIONS // 2
        w.close()
        state["at"] = time.monotonic() - 10  # the probe hung: the report is old
        assert (await _read(port)).startswith(b"down #Galera report")
    finally:
        await agent.close()
