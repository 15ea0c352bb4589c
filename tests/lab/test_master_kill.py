"""E2E 5: a master killed during a flurry; a second one takes over."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from hactl.bus import EVENTS_STREAM, Bus
from hactl.lab import lab as L
from hactl.wire.envelope import Event
from tests.lab.conftest import report
from tests.lab.helpers import stored_done as _stored_done
from tests.lab.helpers import synced_event as _synced

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)

FLURRY = 600


async def test_master_killed_during_flurry_nothing_lost_nothing_doubled(lab: L.Lab) -> None:
    """A second master runs; kill -9 the first mid-flurry: every event done exactly once."""
    await asyncio.to_thread(L.start_master, lab, "master-b")
    bus = await Bus.connect(
        lab.nats_url, lab.client_auth(), name="lab-test-flurry", timeout=5, reconnect=True
    )
    # each node's synthetic events go out with that node's own key (only it may speak for it)
    as_node = {
        n: await Bus.connect(
            lab.nats_url, lab.client_auth(n), name=f"flurry-{n}", timeout=5, reconnect=True
        )
        for n in lab.net.nodes
    }
    try:
        done = 0
        quarter = asyncio.Event()

        async def on_done(_: Event) -> None:
            nonlocal done
            done += 1
            if done >= FLURRY // 4:
                quarter.set()

        await bus.subscribe("hactl/reactor/lab-synced-probe/done", on_done)
        ids = []
        t0 = time.monotonic()
        for i in range(FLURRY):
            node = lab.net.nodes[i % 3]
            ev = _synced(node, i)
            ids.append(ev.id)
            await as_node[node].persist(ev)
            if i == FLURRY // 3:
                await asyncio.wait_for(quarter.wait(), 60)
                os.kill(lab.pids["master"], signal.SIGKILL)
                killed = time.monotonic()

        async def complete() -> bool:
            return len(set(await _stored_done(bus, "lab-synced-probe")) & set(ids)) >= FLURRY

        deadline = time.monotonic() + 120
        while not await complete():
            assert time.monotonic() < deadline, "not every event was done"
            await asyncio.sleep(1.0)
        t_all = time.monotonic()
        stored = [e for e in await _stored_done(bus, "lab-synced-probe") if e in set(ids)]
        assert len(stored) == FLURRY and len(set(stored)) == FLURRY, "each event done exactly once"

        # let the survivor finish the redeliveries before the next test breaks something else
        async def drained() -> bool:
            info = await bus.js.consumer_info(EVENTS_STREAM, "hactl-reactor")
            return info.num_ack_pending == 0 and info.num_pending == 0

        deadline = time.monotonic() + 60
        while not await drained() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        report(
            f"e2e5 master A killed -9 mid-flurry ({FLURRY} beacon events, each firing HAProxy "
            f"actions on 3 nodes): all {FLURRY} done exactly once, the last {t_all - killed:.2f} s "
            f"after the kill (ack wait 5 s) and {t_all - t0:.2f} s after the first event"
        )
    finally:
        await bus.close()
        for b in as_node.values():
            await b.close()
