"""The rabbitmq beacon against a real HTTP server speaking the management API's answers
(captured from a real broker): the broker's own alarms come from its local-alarms check, and a
broker without that check (older than 3.8.10) still reports everything else."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from hactl.minion.beacons import context
from hactl.minion.beacons.rabbitmq import RabbitmqBeacon

GOLDEN = Path(__file__).parent.parent / "unit" / "golden"
NODES = (GOLDEN / "rabbitmq_api_nodes.json").read_bytes()
ALARMED = (GOLDEN / "rabbitmq_local_alarms_503.json").read_bytes()


async def _api(check: tuple[int, bytes]) -> asyncio.Server:
    """A management API on a free loopback port: /api/nodes, and the local-alarms check
    answering ``check`` (status, body)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readline()).split()[1].decode()
        while (await reader.readline()).strip():
            pass  # the headers
        status, body = (200, NODES) if path == "/api/nodes" else check
        writer.write(f"HTTP/1.0 {status} X\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed: AMQP refused


async def test_local_alarms_come_from_the_check_and_its_absence_costs_nothing() -> None:
    """503 with an alarm: local_alarms names it; 404 (no such check): local_alarms None while
    the API, members and partitions are still reported."""
    for check, want in (((503, ALARMED), ["rabbit@ctl3:memory"]), ((404, b"{}"), None)):
        server = await _api(check)
        port = server.sockets[0].getsockname()[1]
        try:
            options = {
                "node": "rabbit@rcap",
                "amqp": f"127.0.0.1:{_closed_port()}",
                "api": f"http://127.0.0.1:{port}",
                "timeout": 2,
            }
            snap = await RabbitmqBeacon(context("ctl3", "rabbitmq", options)).poll()
        finally:
            server.close()
            await server.wait_closed()
        item = snap["local"]
        assert item["api"] is True and item["members"] == ["rabbit@rcap"], item
        assert item["local_alarms"] == want, item
