"""The minion's outbox: events wait here while NATS is away, bounded, flushed in order.

When full, the oldest event is dropped and counted (``dropped``). Each event is stored through
JetStream with its id as ``Nats-Msg-Id``, so a publish retried after a lost ack is kept once.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hactl.bus import Bus
from hactl.errors import BusError, EncodeError
from hactl.log import get_logger
from hactl.wire.envelope import Event

log = get_logger("hactl.minion")


class Outbox:
    """A bounded FIFO of events with one sender task."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.queue: deque[Event] = deque()
        self.dropped = 0
        self.sent = 0
        self.errors = 0  # unexpected send failures (each retried)
        self.bus: Bus | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    def put(self, event: Event) -> None:
        """Queue an event; never blocks (drops the oldest when full)."""
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("outbox_full_dropping_oldest", dropped=self.dropped, limit=self.limit)
        self.queue.append(event)
        self._drained.clear()
        self._wake.set()

    def attach(self, bus: Bus) -> None:
        """Start sending through ``bus``."""
        self.bus = bus
        self._wake.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is sent; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Send queued events in order, forever; waits and retries while the bus is away."""
        backoff = 0.1
        while True:
            if not self.queue or self.bus is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            event = self.queue[0]
            try:
                await self.bus.persist(event, timeout=2.0)
            except EncodeError as exc:  # cannot ever be sent: drop it, loudly
                log.error("event_unsendable", tag=event.tag, error=str(exc))
            except BusError as exc:
                if backoff == 0.1:  # first failure of a run: say so once, then retry quietly
                    log.warning("outbox_waiting", error=str(exc), queued=len(self.queue))
                log.debug("outbox_retry", error=str(exc), queued=len(self.queue))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except Exception:  # never let one surprise silence the node: log, wait, retry
                self.errors += 1
                log.exception("outbox_send_failed", tag=event.tag, queued=len(self.queue))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if self.queue and self.queue[0] is event:
                self.queue.popleft()
            self.sent += 1
            if not self.queue:
                self._drained.set()
            backoff = 0.1
