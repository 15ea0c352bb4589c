"""Watching the minions: liveness verdicts and clock skew, for one master.

A minion is declared lost (``hactl/minion/<id>/lost``, once per silence: a create-once lease)
only when both the view (heartbeats as the stream stored them, server time) and this master's
own live hearing (core NATS, its receive time) have been silent for ``lost_after``, and only
while the master can trust silence (master/reactor/view/liveness.py). A minion whose clock is off
by more than SKEW_LIMIT_S raises ``hactl/minion/<id>/skew`` (and again when back in step).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hactl.auth.perms import EVENTS_STREAM, REACTOR_CONSUMER
from hactl.bus import Bus
from hactl.bus.consumer import pending
from hactl.errors import BusError, HactlError
from hactl.log import get_logger
from hactl.master.reactor.rules.actions.base import Effects
from hactl.master.reactor.view.cluster import SKEW_LIMIT_S, ClusterView
from hactl.master.reactor.view.liveness import LIVENESS_ASK_S, FeedHealth
from hactl.wire.envelope import Event, new_event
from hactl.wire.tags import MASTER_ID, minion_tag

log = get_logger("hactl.reactor")

MAX_HEARD = 10_000  # minions tracked by live heartbeat (the inventory is far smaller)


class Watch:
    """Liveness and clock skew of the minions in ``view``."""

    def __init__(self, bus: Bus, view: ClusterView, effects: Effects, lost_after: float) -> None:
        self.bus = bus
        self.view = view
        self.effects = effects
        self.lost_after = lost_after
        self.feed = FeedHealth()
        # heartbeats heard live (core NATS, the master's receive time): a minion whose events
        # wait for the stream (a raft failover) is still heard here within seconds
        self.heard: dict[str, float] = {}
        self.skew_reported: dict[str, bool] = {}  # bounded by the view's nodes

    async def run(self) -> None:
        """Every second: declare the minions silent past ``lost_after`` lost, unless this
        master may be the one that cannot hear."""
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            silent = [
                n
                for n in self.view.silent(now, self.lost_after)
                if now - self.heard.get(n, 0.0) > self.lost_after
            ]
            if not silent:
                continue
            why = (
                self.feed.blind(time.monotonic(), self.lost_after, silent, self.view.watched())
                or await self._behind()
            )
            if why:  # silence is not evidence: the master may be the one who cannot hear
                self.feed.suspended(why, silent)
                continue
            for node in silent:
                seen = float(self.view.nodes[node]["minion"].get("last_seen", 0))
                if await self.effects.lease(f"lost.{node}.{int(seen)}"):
                    silent_s = round(time.time() - seen, 1)
                    data = {"last_seen": seen, "silent_s": silent_s}
                    event = new_event(minion_tag(node, "lost"), MASTER_ID, data)
                    log.warning("minion_lost", node=node, silent_s=event.data["silent_s"])
                    await self.bus.publish(event, msg_id=f"lost.{node}.{int(seen)}")
                # mark locally at once so the loop does not re-check it every second
                self.view.nodes[node]["minion"] = {**self.view.nodes[node]["minion"], "lost": True}

    async def skew(self, event: Event) -> None:
        """Report a minion whose clock is off (and when it is back in step): visible in
        ``hactl status`` and on the bus; its liveness is timed by the server either way."""
        rec = (self.view.nodes.get(event.minion) or {}).get("minion") or {}
        skewed = bool(rec.get("skewed"))
        if skewed == self.skew_reported.get(event.minion, False):
            return
        self.skew_reported[event.minion] = skewed
        data = {
            "skewed": skewed,
            "skew_s": rec.get("skew"),
            "minion_ts": event.ts,
            "server_ts": rec.get("last_seen"),
            "limit_s": SKEW_LIMIT_S,
        }
        log.warning(
            "minion_clock_skew" if skewed else "minion_clock_ok",
            node=event.minion,
            skew_s=rec.get("skew"),
        )
        skew_event = new_event(minion_tag(event.minion, "skew"), MASTER_ID, data)
        with contextlib.suppress(HactlError):
            await self.bus.publish(skew_event, msg_id=f"skew.{event.id}")

    async def heard_live(self, event: Event) -> None:
        """A heartbeat heard on core NATS (the master's receive time)."""
        if event.minion in self.view.nodes or len(self.heard) < MAX_HEARD:
            self.heard[event.minion] = time.time()

    async def _behind(self) -> str:
        """Why the view may be behind the stream ('' when it has read everything stored): a
        node's heartbeats may sit unread behind a stall, and silence read too early is not
        silence."""
        try:
            left = await pending(self.bus, EVENTS_STREAM, REACTOR_CONSUMER, LIVENESS_ASK_S)
        except BusError as exc:
            return f"JetStream does not answer ({exc.detail}): cannot tell silence"
        return f"{left} stored events not yet read" if left else ""
