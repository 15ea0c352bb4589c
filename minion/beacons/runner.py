"""Runs one beacon: poll, diff, publish on change (with prev), resync periodically."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from hactl.log import get_logger
from hactl.minion.beacons.base import Beacon, Snapshot, diff, event_data
from hactl.wire.envelope import Event, new_event
from hactl.wire.tags import beacon_tag

log = get_logger("hactl.minion")


class BeaconRunner:
    """One task per beacon. ``emit`` queues an event (the outbox)."""

    def __init__(
        self,
        beacon: Beacon,
        minion_id: str,
        emit: Callable[[Event], None],
        resync_interval: float = 30.0,
    ) -> None:
        self.beacon = beacon
        self.minion_id = minion_id
        self.emit = emit
        self.resync_interval = resync_interval
        self.tag = beacon_tag(minion_id, beacon.name)
        self.last: Snapshot | None = None
        self.polled_at = 0.0  # monotonic time of the last poll (the health agent's freshness)
        self.polls = 0
        self.errors = 0
        self._force = False  # the next poll reports even without a change (kick)
        self._kick = asyncio.Event()

    async def _snapshot(self) -> Snapshot:
        try:
            return await self.beacon.poll()
        except Exception as exc:  # a beacon bug must not take the minion down
            self.errors += 1
            log.exception("beacon_poll_failed", beacon=self.beacon.name)
            return {"_beacon": {"error": f"{type(exc).__name__}: {exc}"}}

    async def step(self, now: float, last_sent: float) -> float:
        """One poll; returns when the last event was sent."""
        snap = await self._snapshot()
        self.polled_at = time.monotonic()
        self.polls += 1
        changes = diff(self.last, snap, self.beacon.significant)
        first = self.last is None
        self.last = snap
        forced, self._force = self._force, False
        if first or changes or forced or now - last_sent >= self.resync_interval:
            self.emit(
                new_event(self.tag, self.minion_id, event_data(snap, changes, resync=not changes))
            )
            return now
        return last_sent

    def kick(self) -> None:
        """Poll now and report, change or not (``beacon.resync``: a master that starts)."""
        self._force = True
        self._wakeup().set()

    def _wakeup(self) -> asyncio.Event:
        wakeup: asyncio.Event | None = getattr(self.beacon, "wakeup", None)
        return wakeup if wakeup is not None else self._kick

    async def run(self) -> None:
        """Poll forever at the beacon's interval, or at once when it signals a wakeup (or
        is kicked)."""
        wakeup = self._wakeup()
        last_sent = 0.0
        try:
            while True:
                wakeup.clear()
                last_sent = await self.step(time.monotonic(), last_sent)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), self.beacon.interval)
        finally:
            await self.beacon.close()
