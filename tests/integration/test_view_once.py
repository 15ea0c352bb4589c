"""The view is written once: one VRRP event through a master is checked by the view once and
pokes the reconciler once -- the master's own KV write coming back on its watch is skipped,
while another master's write still comes in."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.bus.jetstream import ensure_audit_stream
from hactl.bus.viewstore import ViewStore
from hactl.master.reactor.convergence.reconciler import ReconcileOptions
from hactl.master.reactor.runtime import ReactorOptions, ReactorRuntime
from hactl.wire.envelope import new_event
from hactl.wire.tags import beacon_tag
from tests.integration.conftest import NatsHandle

pytestmark = pytest.mark.integration

VRRP = {"VI_1": {"state": "MASTER", "priority": 150, "vips": ["10.0.0.10"], "vip_here": True}}


async def _until(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_one_vrrp_event_is_checked_once_and_pokes_once(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """Counted on a real master runtime: view.set for ctl1's vrrp once, reconciler.poke once,
    one own write skipped on the watch; a second master's write of ctl2 is folded in."""
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    master = await Bus.connect(url, nats.auth("master"), name="test-view-once", timeout=5)
    other = await Bus.connect(url, nats.auth("master-b"), name="test-view-other", timeout=5)
    minion = await Bus.connect(url, nats.auth("ctl1"), name="test-view-ctl1", timeout=5)
    runtime = ReactorRuntime(
        master, ReactorOptions(reconcile=ReconcileOptions(interval=60.0), lost_after=600.0)
    )
    try:
        await ensure_stream(master, StreamSettings())
        await ensure_audit_stream(master)
        await runtime.start()
        assert runtime.reconciler is not None
        checks: list[tuple[str, str]] = []
        pokes: list[float] = []
        real_set, real_poke = runtime.view.set, runtime.reconciler.poke

        def counting_set(node: str, aspect: str, value: Any) -> bool:
            checks.append((node, aspect))
            return real_set(node, aspect, value)

        def counting_poke() -> None:
            pokes.append(time.monotonic())
            real_poke()

        runtime.view.set = counting_set  # type: ignore[method-assign]  # counts, then calls it
        runtime.reconciler.poke = counting_poke  # type: ignore[method-assign]  # as above

        event = new_event(beacon_tag("ctl1", "vrrp"), "ctl1", {"items": VRRP})
        await minion.persist(event)
        await _until(lambda: runtime.store.echoes == 1)  # our own write came back: skipped
        await asyncio.sleep(0.5)  # anything else the echo would have caused has run by now
        assert checks == [("ctl1", "vrrp")], checks
        assert len(pokes) == 1, pokes

        # another master's write is news: folded in (checked) and pokes
        store_b = await ViewStore(other).open()
        await store_b.put("ctl2", "vrrp", VRRP, at=time.time())
        await _until(lambda: "ctl2" in runtime.view.nodes)
        assert checks == [("ctl1", "vrrp"), ("ctl2", "vrrp")] and len(pokes) == 2
    finally:
        await runtime.stop()
        for bus in (minion, other, master):
            await bus.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
