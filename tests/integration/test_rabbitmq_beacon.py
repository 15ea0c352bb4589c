"""The rabbitmq beacon against a real HTTP server speaking the management API's answers
(captured from a real broker): the broker's own alarms come from its local-alarms check, and a
broker without that check (older than 3.8.10) still reports everything else."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
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


async def _epmd(registered: str) -> asyncio.Server:
    """An epmd on a free loopback port answering PORT_PLEASE2_REQ as epmd does: node
    ``registered`` found (result 0, then its port and name), any other not (result 1)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        body = await reader.readexactly(size)
        name = body[1:].decode()
        if body[0] == 122 and name == registered:
            port = (25672).to_bytes(2, "big")
            n = name.encode()
            tail = len(n).to_bytes(2, "big") + n + b"\x00\x00"
            writer.write(b"w\x00" + port + b"M\x00\x00\x06\x00\x06" + tail)
        else:
            writer.write(b"w\x01")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def _members_api(members: list[str]) -> asyncio.Server:
    """A management API whose /api/nodes lists ``members`` (all running, no partition)."""
    nodes = json.dumps([{"name": m, "running": True, "partitions": []} for m in members])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readline()).split()[1].decode()
        while (await reader.readline()).strip():
            pass
        status, body = (200, nodes.encode()) if path == "/api/nodes" else (404, b"{}")
        writer.write(f"HTTP/1.0 {status} X\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_a_paused_broker_is_stuck_only_after_its_cluster_was_reachable_for_the_grace(
    tmp_path: Path,
) -> None:
    """A broker alive but silent on AMQP (paused) whose peers' epmd answer: reachable, not
    stuck within resume_grace, stuck after it, not while hactl's own planned work holds its
    service (a fresh grace after it); a VM started since AMQP went silent (a broker booting)
    never stuck; with the peers' epmd gone: not reachable, not stuck; its VM gone: neither
    said."""
    epmd = await _epmd("rabbit")
    port = epmd.sockets[0].getsockname()[1]
    # the peers: rabbit@127.0.0.1 is registered at that epmd, gone@127.0.0.1 is not
    api = await _members_api(["rabbit@ctl3", "rabbit@127.0.0.1", "gone@127.0.0.1"])
    pidfile = tmp_path / "rabbit.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a live process: the broker's VM
    options = {
        "node": "rabbit@ctl3",
        "amqp": f"127.0.0.1:{_closed_port()}",
        "api": f"http://127.0.0.1:{api.sockets[0].getsockname()[1]}",
        "timeout": 1,
        "pidfile": str(pidfile),
        "service": "rabbitmq",
        "epmd_port": port,
        "resume_grace": 1,
    }
    holds: dict[str, str] = {}  # planned work on the minion's services (minion/planned.py)
    ctx = dataclasses.replace(context("ctl3", "rabbitmq", options), held=lambda s: holds.get(s, ""))
    beacon = RabbitmqBeacon(ctx)
    try:
        first = (await beacon.poll())["local"]  # the member list is learnt from the API
        assert first["reachable"] is None and first["stuck"] is None, first
        api.close()
        await api.wait_closed()  # a paused broker's API is down with it
        item = (await beacon.poll())["local"]
        assert item["reachable"] is True and item["stuck"] is False, item
        await asyncio.sleep(1.2)
        item = (await beacon.poll())["local"]
        assert item["reachable"] is True and item["stuck"] is True, item
        holds["rabbitmq"] = "restart"  # hactl's own roll stops it: never stuck meanwhile
        item = (await beacon.poll())["local"]
        assert item["stuck"] is False, item
        holds.clear()  # the work over: a fresh grace from the next look
        item = (await beacon.poll())["local"]
        assert item["reachable"] is True and item["stuck"] is False, item
        await asyncio.sleep(1.2)
        item = (await beacon.poll())["local"]
        assert item["stuck"] is True, item
        # a VM started since AMQP went silent is a broker booting (a restart), not a pause:
        # never stuck, however long its peers have answered
        boot = await asyncio.create_subprocess_exec("sleep", "30")
        try:
            await asyncio.sleep(0.05)  # its start time after the beacon's down_since
            pidfile.write_text(f"{boot.pid}\n")
            for _ in range(2):
                item = (await beacon.poll())["local"]
                assert item["process"] is True and item["stuck"] is False, item
                await asyncio.sleep(1.2)
        finally:
            boot.kill()
            await boot.wait()
        pidfile.write_text(f"{os.getpid()}\n")
        epmd.close()
        await epmd.wait_closed()
        item = (await beacon.poll())["local"]
        assert item["reachable"] is False and item["stuck"] is False, item
        pidfile.write_text("")  # the VM gone: dead, not paused
        item = (await beacon.poll())["local"]
        assert item["reachable"] is None and item["stuck"] is None, item
    finally:
        for server in (api, epmd):
            server.close()
        await beacon.close()
