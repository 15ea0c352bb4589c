"""Planned work on this node's services: while hactl itself stops or restarts a service (an
apply's restart, a rolling restart, ``service.stop``), the supervisor leaves exactly that
service alone, and afterwards knows what state the work meant to leave it in.

Pure and in-process: the executors and the supervisor run in the same minion, so a hold is a
context manager around the work, never a message that could be lost or forged. Holds nest
(two restarts of one service at once: supervision resumes when both are over).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class _Hold:
    reason: str
    since: float
    running_after: bool


@dataclass
class PlannedWork:
    """Which services are held by planned work right now, and how the last work ended."""

    _holds: dict[str, list[_Hold]] = field(default_factory=dict)
    _after: dict[str, bool] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def hold(self, service: str, reason: str, *, running_after: bool) -> AsyncIterator[None]:
        """Suspend supervision of ``service`` for the body; ``running_after``: what the work
        leaves it as (a restart: running; a stop: stopped)."""
        entry = _Hold(reason, time.time(), running_after)
        self._holds.setdefault(service, []).append(entry)
        try:
            yield
        finally:
            holds = self._holds.get(service, [])
            if entry in holds:
                holds.remove(entry)
            if not holds:
                self._holds.pop(service, None)
            self._after[service] = running_after

    def held(self, service: str) -> str:
        """Why ``service`` is held right now ('' when it is not)."""
        holds = self._holds.get(service)
        return holds[-1].reason if holds else ""

    def ended(self, service: str) -> bool | None:
        """What the last finished work meant to leave ``service`` as (running or not), once:
        None when no work ended since the last call."""
        return self._after.pop(service, None)
