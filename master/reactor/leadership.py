"""Which master leads: one key in the short-TTL lock bucket (``HACTL_LOCKS/reconciler``).

The leader corrects the data plane (master/reactor/convergence/reconciler.py) and answers
the singleton renewals with ``leader: true`` (master/singletons/manager.py); both ask
:meth:`Leadership.lead` before they act. The key is created once and then renewed with a
compare-and-set on its revision; a master that stops renewing loses it when the bucket's TTL
ends, and a clean stop gives it back at once (:meth:`resign`). A master restarted on the same
data dir takes back at once a key that still holds its dead predecessor's value
(master/incarnation.py, decision 59).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from hactl.bus import KeyConflict, KvStore
from hactl.errors import BusError
from hactl.log import get_logger
from hactl.master.incarnation import Incarnation

log = get_logger("hactl.reconciler")
LEADER_KEY = "reconciler"
LEADER_TTL = 15.0  # the lock bucket's TTL
RENEW_EVERY = 2.0  # a lead checked within this is trusted without a write


class Leadership:
    """This master's claim on the leader key."""

    def __init__(
        self,
        locks: KvStore,
        clock: Callable[[], float] = time.monotonic,
        incarnation: Incarnation | None = None,
    ) -> None:
        self.locks = locks
        self.clock = clock
        run = incarnation or Incarnation.fresh()
        self.me = run.token
        self.previous = run.previous  # the dead predecessor's value: taken back once
        self.leading = False
        self._rev: int | None = None
        self._renewed = -1e9
        self._lock = asyncio.Lock()

    async def lead(self) -> bool:
        """Hold (or take) the leader key; False while another master holds it or this one
        cannot write. Renewed at most every 2 s, trusted for a third of its TTL. Called by
        the reconciler's passes and the singleton leases (one at a time)."""
        async with self._lock:
            return await self._lead()

    async def _lead(self) -> bool:
        now = self.clock()
        if self._rev is not None and now - self._renewed < RENEW_EVERY:
            return True
        try:
            if self._rev is None:
                self._rev = await self._take()
            else:
                self._rev = await self.locks.update(LEADER_KEY, self.me, self._rev, timeout=2.0)
            self._renewed = now
        except BusError as exc:  # taken (KeyConflict), or JetStream away
            held = self._rev is not None
            # a write whose acknowledgement was lost (a server killed mid-write) may have
            # landed: the key still (or now) ours keeps the lead, bounded by the last renewal
            self._rev = await self._own_revision() if held else None
            if held and self._rev is None:
                log.warning("reconciler_not_leading", error=exc.detail[:200])
        leading = self._rev is not None and now - self._renewed < LEADER_TTL / 3
        if leading != self.leading:
            log.info("reconciler_leading" if leading else "reconciler_standby")
        self.leading = leading
        return leading

    async def _take(self) -> int:
        """Create the key; or, held by this data dir's dead predecessor, take it back in one
        compare-and-set. KeyConflict when another master holds it."""
        try:
            rev = await self.locks.create(LEADER_KEY, self.me, timeout=2.0)
        except KeyConflict:
            if self.previous is None:
                raise
            entry = await self.locks.get(LEADER_KEY, timeout=1.0)
            if entry is None or entry.value != self.previous or not entry.revision:
                self.previous = None  # another master's now: wait for it like any other
                raise
            rev = await self.locks.update(LEADER_KEY, self.me, entry.revision, timeout=2.0)
            log.info("reconciler_lead_taken_back", detail="the key held this master's last run")
        self.previous = None  # led once: the predecessor's value can never be the key's again
        return rev

    async def _own_revision(self) -> int | None:
        """The leader key's revision if it still holds this master's value; the last known
        revision when it cannot be read (JetStream electing); None when another holds it."""
        try:
            entry = await self.locks.get(LEADER_KEY, timeout=1.0)
        except BusError:
            return self._rev
        if entry is None or entry.value != self.me:
            return None
        return entry.revision or None

    async def resign(self) -> None:
        """Give the leader key back (a clean stop): another master takes over at once."""
        if self._rev is not None:
            with contextlib.suppress(BusError):
                await self.locks.delete(LEADER_KEY, last=self._rev, timeout=2.0)
        self._rev, self.leading = None, False
