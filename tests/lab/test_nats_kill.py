"""E2E 6: one of the three NATS servers killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from hactl.bus import Bus
from hactl.errors import HactlError
from hactl.lab import bus as lab_bus
from hactl.lab import lab as L
from hactl.wire.envelope import Event
from tests.lab.conftest import report
from tests.lab.helpers import synced_event as _synced
from tests.lab.helpers import wait_until

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)

FLURRY = 600


async def test_nats_server_killed_events_keep_flowing(lab: L.Lab) -> None:
    """kill -9 one of the three NATS servers: heartbeats of all minions and reactions continue."""
    victim = "ctl2"
    bus = await Bus.connect(
        lab.nats_url, lab.client_auth(), name="lab-test-nats", timeout=5, reconnect=True
    )
    ctl1 = await Bus.connect(  # ctl1's synthetic event goes out with ctl1's own key
        lab.nats_url, lab.client_auth("ctl1"), name="lab-test-ctl1", timeout=5, reconnect=True
    )
    seen: dict[str, float] = {}
    try:
        t0 = 0.0

        async def on_hb(e: Event) -> None:
            if t0 and e.minion not in seen:
                seen[e.minion] = time.monotonic()

        await bus.subscribe("hactl/minion/*/heartbeat", on_hb)
        t0 = time.monotonic()
        os.kill(lab.pids[f"nats:{victim}"], signal.SIGKILL)
        await asyncio.to_thread(
            wait_until, lambda: len(seen) == 3, 30, "heartbeats of all 3 minions"
        )
        ev = _synced("ctl1", 10_000)
        got = asyncio.Event()

        async def on_done(e: Event) -> None:
            if e.data.get("event_id") == ev.id:
                got.set()

        await bus.subscribe("hactl/reactor/lab-synced-probe/done", on_done)
        t1 = time.monotonic()
        while True:  # the stream may be electing a new leader if it was on the dead server
            try:
                await ctl1.persist(ev, timeout=5)
                break
            except HactlError:
                assert time.monotonic() - t1 < 30, "the stream never accepted the event"
                await asyncio.sleep(0.2)
        t_stored = time.monotonic()
        await asyncio.wait_for(got.wait(), 30)
        report(
            f"e2e6 kill -9 NATS on {victim}: a heartbeat from every minion within "
            f"{max(seen.values()) - t0:.2f} s (those on {victim} reconnected); the stream stored a "
            f"new event {t_stored - t0:.2f} s after the kill; event -> rule -> HAProxy actions -> "
            f"done took {time.monotonic() - t_stored:.2f} s more on the 2 remaining servers"
        )
    finally:
        await bus.close()
        await ctl1.close()
        await asyncio.to_thread(lab_bus.start_nats, lab, victim)
