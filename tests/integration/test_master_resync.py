"""A master that starts has every node of the view it read back from KV report again at once,
instead of trusting its predecessor's last record until the node's next resync."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.bus.jetstream import ensure_audit_stream
from hactl.master.reactor.convergence.reconciler import ReconcileOptions
from hactl.master.reactor.runtime import ReactorOptions, ReactorRuntime
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle

pytestmark = pytest.mark.integration

OPTIONS = ReactorOptions(reconcile=ReconcileOptions(interval=60.0), lost_after=600.0)


async def _until(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out: {why}"
        await asyncio.sleep(0.05)


async def test_a_starting_master_has_the_nodes_report_again_at_once(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """A real minion whose beacon polls once an hour and resyncs every 5 minutes: the first
    master folds in its report and stops; a second master starts with ctl1 restored from KV,
    asks it to resync, and gets its report (no change in it) within seconds, which makes ctl1's
    record fresh again."""
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    first = await Bus.connect(url, nats.auth("master"), name="test-resync-a", timeout=5)
    watcher = await Bus.connect(url, nats.auth("master-b"), name="test-resync-w", timeout=5)
    second: Bus | None = None
    runtime_b: ReactorRuntime | None = None
    reports: list[Event] = []
    stop = asyncio.Event()
    conf = parse_config(
        f"""
id: ctl1
resync_interval: 300
heartbeat_interval: 300
haproxy_socket: {tmp_path}/none.sock
beacons:
  haproxy: {{socket: {tmp_path}/none.sock, interval: 3600}}
""",
        "test",
    )
    minion_task: asyncio.Task[None] | None = None
    runtime_a = ReactorRuntime(first, OPTIONS)
    try:
        await ensure_stream(first, StreamSettings())
        await ensure_audit_stream(first)

        async def on_report(e: Event) -> None:
            reports.append(e)

        await watcher.subscribe("hactl/beacon/ctl1/haproxy", on_report)
        await runtime_a.start()
        minion_task = asyncio.create_task(Minion(conf, url, nats.auth("ctl1")).run(stop))
        await _until(lambda: "haproxy" in runtime_a.view.nodes.get("ctl1", {}), 15, "folded in")
        await _until(lambda: bool(reports), 5, "first report seen")
        await asyncio.sleep(1.0)  # the first master's KV write has landed
        await runtime_a.stop()
        assert len(reports) == 1  # and no other: its next is 5 minutes away

        second = await Bus.connect(url, nats.auth("master"), name="test-resync-b", timeout=5)
        runtime_b = ReactorRuntime(second, OPTIONS)
        started = time.monotonic()
        await runtime_b.start()
        assert "ctl1" in runtime_b.view.nodes  # restored from KV
        await _until(lambda: len(reports) == 2, 10, "a report after the second master started")
        took = time.monotonic() - started
        assert reports[1].data["changes"] == [], reports[1].data  # nothing changed: asked
        view_b = runtime_b.view
        await _until(lambda: ("ctl1", "haproxy") not in view_b.restored, 5, "fresh record")
        assert took < 60, took  # far below the minion's resync_interval (300 s)
    finally:
        stop.set()
        if minion_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(minion_task, 10)
        if runtime_b is not None:
            await runtime_b.stop()
        for bus in (second, watcher, first):
            if bus is not None:
                await bus.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
