"""A per-minion limit on stored job returns.

A minion may publish a return for any job id (``hactl.job.*.ret.<its id>``), and every job id
is a new subject, so no per-subject limit of the stream bounds it. Job returns live in their
own stream (``HACTL_JOBS``, its own byte cap), so a flood evicts no event; this module keeps
one minion's flood from evicting the other minions' returns too:

- every master hears the subjects of job returns (core NATS, the payload is not decoded) and
  keeps a token bucket per minion: ``limit`` returns, refilled at ``limit`` per ``window_s``
  (a state.apply is one return per node, a reconciler pass a few);
- a minion whose bucket runs dry is flooding: its returns in ``HACTL_JOBS`` are purged down to
  its newest ``limit`` (a JetStream purge with a subject filter and ``keep``; two masters
  purging the same is harmless), at most once per ``purge_every_s`` while it goes on, and
  ``hactl/event/alert/job_flood`` is stored once, with the node;
- a full window without running dry resolves the alert (``resolved: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from hactl.auth.perms import JOBS_STREAM
from hactl.bus import Bus
from hactl.errors import BusError
from hactl.log import get_logger
from hactl.wire.envelope import new_event
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.master")
#: the subject every job return is published on (the last token is the minion's id)
RETURNS = "hactl.job.*.ret.*"


@dataclass
class _Bucket:
    tokens: float
    at: float
    dry_since: float | None = None  # when it last ran dry (None: not flooding)
    purged_at: float = 0.0


@dataclass
class JobQuota:
    """Token buckets per minion (pure: the clock is passed in)."""

    limit: int = 1000
    window_s: float = 60.0
    purge_every_s: float = 10.0
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def note(self, minion: str, now: float) -> str | None:
        """One return of ``minion`` heard at ``now``: ``"flood"`` when it starts flooding,
        ``"purge"`` when a flood that goes on is due another purge, else None."""
        b = self.buckets.get(minion)
        if b is None:
            b = self.buckets[minion] = _Bucket(float(self.limit), now)
        b.tokens = min(float(self.limit), b.tokens + (now - b.at) * self.limit / self.window_s)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return None
        started = b.dry_since is None
        b.dry_since = now
        if started or now - b.purged_at >= self.purge_every_s:
            b.purged_at = now
            return "flood" if started else "purge"
        return None

    def calmed(self, now: float) -> list[str]:
        """The minions whose flood ended: a full window since their bucket last ran dry."""
        out = []
        for minion, b in self.buckets.items():
            if b.dry_since is not None and now - b.dry_since >= self.window_s:
                b.dry_since = None
                out.append(minion)
        return out


class QuotaKeeper:
    """Runs a :class:`JobQuota` on a master's bus connection."""

    def __init__(self, bus: Bus, quota: JobQuota | None = None) -> None:
        self.bus = bus
        self.quota = quota or JobQuota()
        self.purges = 0
        self._work: set[asyncio.Task[None]] = set()
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Hear every job return's subject; look for ended floods every few seconds."""
        self._sub = await self.bus.subscribe_subjects(RETURNS, self._heard)
        self._loop_task = asyncio.create_task(self._calm_loop(), name="job-quota")

    async def stop(self) -> None:
        """Stop hearing; let a running purge end."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._work:
            await asyncio.wait(self._work, timeout=5)

    async def _heard(self, subject: str) -> None:
        minion = subject.rsplit(".", 1)[-1]
        verdict = self.quota.note(minion, time.monotonic())
        if verdict is not None:
            task = asyncio.create_task(self._enforce(minion, verdict == "flood"))
            self._work.add(task)
            task.add_done_callback(self._work.discard)

    async def _enforce(self, minion: str, started: bool) -> None:
        keep = self.quota.limit
        try:
            await self.bus.purge(JOBS_STREAM, f"hactl.job.*.ret.{minion}", keep)
            self.purges += 1
        except BusError as exc:
            log.warning("job_flood_not_purged", node=minion, error=str(exc))
        if started:
            log.warning("job_flood", node=minion, kept=keep)
            await self._alert(
                minion,
                {
                    "reason": f"{minion} stores job returns faster than {keep} per "
                    f"{self.quota.window_s:g} s: only its newest {keep} are kept",
                    "kept": keep,
                },
            )

    async def _calm_loop(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.quota.window_s / 4))
            for minion in self.quota.calmed(time.monotonic()):
                log.info("job_flood_ended", node=minion)
                await self._alert(minion, {"resolved": True})

    async def _alert(self, minion: str, data: dict[str, object]) -> None:
        event = new_event(
            "hactl/event/alert/job_flood",
            MASTER_ID,
            {"node": minion, "component": "jobs", **data},
        )
        try:
            await self.bus.persist(event)
        except BusError as exc:
            log.warning("job_flood_alert_not_stored", node=minion, error=str(exc))
