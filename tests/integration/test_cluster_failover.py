"""A three-server NATS cluster loses the server that leads the event stream.

Regression: a JetStream publish made while the stream elects a new leader fails with nats-py's
``NoStreamResponseError`` (a 503), which the bus did not map to ``BusError``; the minion's
outbox task died of it and the node went silent for good (lab E2E 6, once in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from hactl.bus import EVENTS_STREAM, Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.errors import BusError
from hactl.minion.outbox import Outbox
from hactl.wire.envelope import new_event
from tests.integration.conftest import NatsHandle
from tests.integration.daemons import free_port
from tests.integration.test_minion_outage import _stored

EVENTS = 200


def _cluster(tmp: Path, auth_dir: Path) -> list[EmbeddedServer]:
    ports = [free_port() for _ in range(3)]
    routes = tuple(f"nats://127.0.0.1:{p}" for p in ports)
    return [
        EmbeddedServer(
            ServerOptions(
                data_dir=tmp / f"n{i}",
                auth=ServerAuth(auth_dir),
                port=-1,
                name=f"n{i}",
                cluster_port=p,
                routes=routes,
                cluster_name="hactl-test",
            )
        )
        for i, p in enumerate(ports)
    ]


async def _leader(bus: Bus) -> str:
    for _ in range(100):  # the R3 stream has a leader once its raft group formed
        with contextlib.suppress(Exception):
            info = await bus.js.stream_info(EVENTS_STREAM)
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        await asyncio.sleep(0.1)
    raise AssertionError("the stream never got a leader")


async def test_outbox_survives_the_stream_leader_being_killed(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """kill -9 the server leading the R3 stream mid-flow: every queued event is stored once."""
    servers = _cluster(tmp_path, nats.auth_dir)
    try:
        urls = await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        admin = await Bus.connect(
            ",".join(urls), nats.auth("master"), name="test-admin", timeout=10
        )
        try:
            for attempt in range(50):  # the meta group elects its leader first
                try:
                    await ensure_stream(admin, StreamSettings(replicas=3))
                    break
                except BusError:
                    assert attempt < 49, "no stream on a fresh cluster"
                    await asyncio.sleep(0.2)
            leader = await _leader(admin)
        finally:
            await admin.close()
        victim = next(s for s in servers if s.options.name == leader)
        # the minion talks to the leader's server first, as the unlucky node in the lab did
        order = [victim.url] + [u for u in urls if u != victim.url]
        bus = await Bus.connect(
            ",".join(order), nats.auth(), name="test-minion", timeout=5, reconnect=True
        )
        outbox = Outbox(10_000)
        outbox.attach(bus)
        sender = asyncio.create_task(outbox.run())
        since = datetime.now(UTC)
        try:
            for i in range(EVENTS):
                outbox.put(new_event("hactl/minion/fo1/heartbeat", "fo1", {"n": i}))
                if i == 20:
                    await asyncio.to_thread(victim.kill)
                await asyncio.sleep(0.01)
            assert await outbox.drain(60), f"{len(outbox.queue)} events never left the outbox"
            assert not sender.done(), "the outbox task must never end"
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await bus.close()

        survivors = ",".join(u for u in urls if u != victim.url)
        got = await _stored(survivors, since, "hactl/minion/fo1/heartbeat", EVENTS, nats.auth())
        assert [e.data["n"] for e in got] == list(range(EVENTS)), "all stored, once, in order"
        assert outbox.dropped == 0
    finally:
        for s in servers:
            await asyncio.to_thread(s.stop)
