"""The minion against a real one-node MariaDB Galera: beacon events and the galera commands."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from hactl.auth.perms import LEASE_BUCKET
from hactl.bus import Bus, StreamSettings, ensure_stream, kv_bucket
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from hactl.wire.envelope import Event
from hactl.wire.leases import BootstrapLease, bootstrap_key, encode_bootstrap
from tests.integration import galera
from tests.integration.conftest import NatsHandle
from tests.integration.test_minion_haproxy import _until_serving

pytestmark = pytest.mark.skipif(not galera.available(), reason="needs root, mariadbd and galera-4")


async def _next(q: asyncio.Queue[Event], pred: object, timeout: float = 15.0) -> Event:
    """The next galera event whose ``local`` item satisfies ``pred``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ev = await asyncio.wait_for(q.get(), max(0.01, deadline - loop.time()))
        if pred(ev.data["items"]["local"]):  # type: ignore[operator]
            return ev


async def test_galera_crash_position_and_bootstrap(nats: NatsHandle) -> None:
    """Crash -> beacon reports the grastate; position recovered; stale plan refused; bootstrap."""
    node = await asyncio.to_thread(galera.GaleraNode)
    bus = await Bus.connect(nats.url, nats.auth(), name="test-galera")
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(node.start, "--wsrep-new-cluster")
        await ensure_stream(bus, StreamSettings())
        events: asyncio.Queue[Event] = asyncio.Queue()

        async def on_event(e: Event) -> None:
            await events.put(e)

        await bus.subscribe("hactl/beacon/itg1/galera", on_event)
        conf = parse_config(
            f"""
id: itg1
resync_interval: 300
heartbeat_interval: 300
beacons:
  galera: {{socket: {node.socket}, datadir: {node.datadir}, interval: 0.2}}
galera: {{defaults_file: {node.cnf}, datadir: {node.datadir}, socket: {node.socket},
          pid_file: {node.pid_file}}}
""",
            "test",
        )
        task = asyncio.create_task(Minion(conf, nats.url, nats.auth()).run(stop))
        await _until_serving(bus, "itg1")
        first = await _next(events, lambda i: i["running"])
        local = first.data["items"]["local"]
        assert (local["cluster_status"], local["synced"], local["cluster_size"]) == (
            "Primary",
            True,
            1,
        )
        uuid = local["cluster_state_uuid"]
        await asyncio.to_thread(node.sql, "CREATE DATABASE t")
        await asyncio.to_thread(node.sql, "CREATE TABLE t.r (id INT PRIMARY KEY)")
        await asyncio.to_thread(node.sql, "INSERT INTO t.r VALUES (1),(2),(3)")
        status = await asyncio.to_thread(node.sql, "SHOW STATUS LIKE 'wsrep_last_committed'")
        committed = int(str(status[0][1]))

        leases = await kv_bucket(bus, LEASE_BUCKET, ttl_s=600)

        async def grant(node_id: str, seqno: int) -> None:
            record = BootstrapLease(node_id, uuid, seqno, "master", time.time())
            await leases.put(bootstrap_key(uuid, seqno), encode_bootstrap(record))

        # a running node: its position is live, and bootstrap is refused even with a lease
        await grant("itg1", committed)
        pos = await bus.request("itg1", "galera.position", timeout=10)
        assert pos.ok and pos.result["source"] == "live" and pos.result["seqno"] == committed
        refused = await bus.request(
            "itg1", "galera.bootstrap", {"uuid": uuid, "seqno": committed}, timeout=10
        )
        assert not refused.ok and "answers" in refused.error_message

        await asyncio.to_thread(node.kill9)
        down = await _next(events, lambda i: not i["running"])
        dl = down.data["items"]["local"]
        assert (dl["uuid"], dl["seqno"]) == (uuid, -1)
        assert {"item": "local", "field": "running", "value": False, "prev": True} in down.data[
            "changes"
        ]

        pos = await bus.request("itg1", "galera.position", timeout=60)
        assert pos.ok and pos.result["source"] == "recover", pos
        assert (pos.result["uuid"], pos.result["seqno"]) == (uuid, committed)

        # a bootstrap without the planner's lease, or with another node's, is refused
        await leases.delete(bootstrap_key(uuid, committed))
        alone = await bus.request(
            "itg1", "galera.bootstrap", {"uuid": uuid, "seqno": committed}, timeout=10
        )
        assert not alone.ok and "no bootstrap lease" in alone.error_message, alone
        await grant("itg2", committed)
        other = await bus.request(
            "itg1", "galera.bootstrap", {"uuid": uuid, "seqno": committed}, timeout=10
        )
        assert not other.ok and "names itg2" in other.error_message, other
        assert node.pid() is None

        await grant("itg1", committed + 5)
        stale = await bus.request(
            "itg1", "galera.bootstrap", {"uuid": uuid, "seqno": committed + 5}, timeout=60
        )
        assert not stale.ok and "stale plan" in stale.error_message
        assert node.pid() is None

        await grant("itg1", committed)
        boot = await bus.request(
            "itg1", "galera.bootstrap", {"uuid": uuid, "seqno": committed}, timeout=90
        )
        assert boot.ok and boot.result["result"] is True, boot
        back = await _next(events, lambda i: i["running"] and i["synced"])
        assert back.data["items"]["local"]["cluster_state_uuid"] == uuid
        rows = await asyncio.to_thread(node.sql, "SELECT COUNT(*) FROM t.r")
        assert rows[0][0] == 3
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await bus.close()
        await asyncio.to_thread(node.remove)
