"""The minion across a NATS outage: it keeps watching, buffers, and flushes in order."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hactl.auth.client import ClientAuth
from hactl.bus import EVENTS_STREAM, Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.errors import MinionFailed
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle
from tests.integration.daemons import Backend
from tests.integration.test_minion_haproxy import _until_serving


async def _stored(url: str, since: datetime, tag: str, want: int, auth: ClientAuth) -> list[Event]:
    """Events stored in the stream under ``tag`` since ``since`` (waits for ``want`` of them)."""
    got: list[Event] = []
    done = asyncio.Event()

    async def on_event(e: Event) -> None:
        got.append(e)
        if len(got) >= want:
            done.set()

    bus = await Bus.connect(url, auth, name="test-outage-reader", timeout=5)
    try:
        await bus.replay(tag, since, on_event, EVENTS_STREAM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 15)
        await asyncio.sleep(0.3)  # a wrong extra event would arrive here
        return got
    finally:
        await bus.close()


async def _server(data: Path, port: int, auth_dir: Path) -> tuple[EmbeddedServer, str]:
    server = EmbeddedServer(ServerOptions(data_dir=data, auth=ServerAuth(auth_dir), port=port))
    return server, await asyncio.to_thread(server.start)


async def test_events_during_outage_are_flushed_in_order(tmp_path: Path, nats: NatsHandle) -> None:
    """Three backends die while NATS is down; once it is back all three are stored, in order."""
    web = [Backend() for _ in range(3)]
    endpoints = ", ".join(
        f"{{name: b{i}, url: 'tcp://127.0.0.1:{b.port}'}}" for i, b in enumerate(web)
    )
    server, url = await _server(tmp_path / "js", -1, nats.auth_dir)
    port = int(url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    minion: Minion | None = None
    try:
        admin = await Bus.connect(url, nats.auth("master"), name="test-outage", timeout=5)
        await ensure_stream(admin, StreamSettings())
        conf = parse_config(
            f"""
id: ito1
resync_interval: 300
heartbeat_interval: 300
buffer_limit: 100
beacons:
  service: {{endpoints: [{endpoints}], interval: 0.1, timeout: 0.5}}
""",
            "test",
        )
        minion = Minion(conf, url, nats.auth())
        task = asyncio.create_task(minion.run(stop))
        await _until_serving(admin, "ito1")
        await admin.close()
        since = datetime.now(UTC)
        assert await minion.outbox.drain(5)

        await asyncio.to_thread(server.stop)  # NATS gone
        for b in web:  # each death seen by the beacon while NATS is away
            await asyncio.to_thread(b.stop)
            await asyncio.sleep(0.5)
        assert len(minion.outbox.queue) >= 3, "changes are buffered, not lost"
        assert minion.outbox.dropped == 0

        server, url = await _server(
            tmp_path / "js", port, nats.auth_dir
        )  # back, same port, same store
        assert await minion.outbox.drain(20), "the outbox flushes after reconnect"
        events = await _stored(url, since, "hactl/beacon/ito1/service", 3, nats.auth())
        changed = [c["item"] for e in events for c in e.data["changes"]]
        assert changed == ["b0", "b1", "b2"], [e.data["changes"] for e in events]
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await asyncio.to_thread(server.stop)
        for b in web:
            with contextlib.suppress(Exception):
                b.stop()


async def test_full_outbox_drops_oldest_and_counts(tmp_path: Path, nats: NatsHandle) -> None:
    """A 2-event buffer with NATS never reachable drops the oldest events and counts them."""
    web = [Backend() for _ in range(4)]
    endpoints = ", ".join(
        f"{{name: b{i}, url: 'tcp://127.0.0.1:{b.port}'}}" for i, b in enumerate(web)
    )
    conf = parse_config(
        f"""
id: ito2
resync_interval: 300
heartbeat_interval: 300
buffer_limit: 2
beacons:
  service: {{endpoints: [{endpoints}], interval: 0.1, timeout: 0.5}}
""",
        "test",
    )
    minion = Minion(conf, "nats://127.0.0.1:1", nats.auth(), connect_timeout=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(minion.run(stop))
    try:
        await asyncio.sleep(0.5)
        for b in web:
            await asyncio.to_thread(b.stop)
            await asyncio.sleep(0.3)
        assert len(minion.outbox.queue) == 2
        assert minion.outbox.dropped >= 3  # start + first resync + early changes
        newest = minion.outbox.queue[-1]
        assert [c["item"] for c in newest.data["changes"]] == ["b3"]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def test_a_dead_task_stops_the_minion_loudly(nats: NatsHandle) -> None:
    """A task that must run forever ends: the minion exits (MinionFailed, exit 1), never lingers."""
    conf = parse_config("id: ito3\nheartbeat_interval: 0.05\nbeacons: {}\n", "test")
    minion = Minion(conf, "nats://127.0.0.1:1", nats.auth(), connect_timeout=0.5)

    real_grains = minion.grains
    calls: list[int] = []

    async def grains_failing_after_start() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:  # the start event's grains work; the heartbeat's do not
            raise RuntimeError("injected fault")
        return await real_grains()

    minion.grains = grains_failing_after_start  # type: ignore[method-assign]
    stop = asyncio.Event()
    with pytest.raises(MinionFailed) as info:
        await asyncio.wait_for(minion.run(stop), 10)
    assert info.value.exit_code == 1
    assert stop.is_set()
