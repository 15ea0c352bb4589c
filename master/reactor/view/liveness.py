"""Liveness verdicts a master may trust: silence counts only while the master itself hears.

Pure (the clock is passed in); the runtime feeds it every consumer delivery and asks it before
it declares a minion lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hactl.log import get_logger

log = get_logger("hactl.reactor")


@dataclass(slots=True)
class FeedHealth:
    """Whether this master can trust the silence of a minion.

    A minion is declared lost only while the master itself hears the bus: its consumer
    delivered something recently (other minions' heartbeats), the backlog after a stall had
    time to arrive, and not every minion is silent at once. Measured in the lab: a master
    whose NATS server was partitioned got no delivery for ~10 s (reconnect, then the stream's
    raft failover) and declared all three healthy minions lost."""

    last: float = 0.0
    resumed: float = 0.0
    _said: float = 0.0

    def delivered(self, now: float) -> None:
        """A message came in through the consumer."""
        if now - self.last > FEED_GAP_S:
            self.resumed = now
        self.last = now

    def blind(self, now: float, lost_after: float, silent: list[str], known: int) -> str:
        """Why silence proves nothing right now ('' when it does)."""
        if now - self.last > lost_after / 2:  # a live minion heartbeats more often than this
            return f"no delivery for {now - self.last:.1f} s: this master may be cut off"
        if now - self.resumed < FEED_GRACE_S:
            return "deliveries just resumed: the backlog is still arriving"
        if known > 1 and len(silent) >= known:
            return "every minion fell silent at once"
        return ""

    def suspended(self, why: str, silent: list[str]) -> None:
        """Say so, at most every 5 s."""
        now = time.monotonic()
        if now - self._said >= 5.0:
            self._said = now
            log.warning("liveness_suspended", reason=why, silent=silent)


LIVENESS_ASK_S = 2.0  # the consumer-info question before a verdict
FEED_GAP_S = 3.0  # a gap in deliveries this long, then a delivery: a stall has ended ...
FEED_GRACE_S = 3.0  # ... and its backlog gets this long to arrive before silence counts
