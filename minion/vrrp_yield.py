"""Yields: this node gives up a VIP for a bounded time (the ``vrrp.yield`` command).

keepalived tracks one file per instance (``track_file ... weight 0``, rendered by the shipped
keepalived state): ``1`` puts the instance in FAULT, so keepalived drops the VIP and stops
advertising at once; ``0`` lets it take part in the election again. This keeper is the only
writer of those files. Every yield has a deadline on this process's monotonic clock and ends
by itself (the master renews it while the split brain it resolves lasts), so a master that
dies or loses the node never leaves the VIP without a holder for longer than one yield. On
start the keeper clears every file: a yield of an earlier minion process is not inherited.

Narrow by construction: only the instances listed in minion.yaml's ``vrrp`` section, only
files named by :func:`hactl.wire.vrrp.track_file` inside ``track_dir``, at most
``max_seconds`` (never more than :data:`hactl.wire.vrrp.MAX_SECONDS`).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hactl.errors import HactlError
from hactl.log import get_logger
from hactl.wire.vrrp import MAX_SECONDS, down_file, track_file

log = get_logger("hactl.minion")


@dataclass(frozen=True, slots=True)
class VrrpSettings:
    """minion.yaml ``vrrp``: where the track files live and which instances may yield."""

    track_dir: str
    instances: tuple[str, ...] = ()
    max_seconds: int = 120
    #: services whose death the minion flags at once in ``down_<service>`` (process_watch.py)
    watch: tuple[str, ...] = ()
    #: end the connections accepted on a VIP the moment it leaves this node (vip_release.py)
    release_connections: bool = True
    #: end this node's own connections to a VIP that moved to another node (vip_follow.py)
    follow_connections: bool = True

    def __post_init__(self) -> None:
        if not os.path.isabs(self.track_dir):
            raise ValueError(f"track_dir must be an absolute path, got {self.track_dir!r}")
        if not self.instances:
            raise ValueError("instances: list the vrrp_instance names this node may yield")
        for name in self.instances:
            track_file(name)  # a SchemaError names a bad one
        for name in self.watch:
            down_file(name)
        if isinstance(self.max_seconds, bool) or not 1 <= self.max_seconds <= MAX_SECONDS:
            raise ValueError(f"max_seconds must be from 1 to {MAX_SECONDS}")


class YieldRefused(HactlError):
    """A yield this keeper will not write (the executor turns it into a refusal)."""


class YieldKeeper:
    """Writes the yield files and ends every yield at its deadline."""

    def __init__(self, settings: VrrpSettings) -> None:
        self.settings = settings
        self._until: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def path(self, instance: str) -> Path:
        """The file keepalived tracks for ``instance``."""
        return Path(self.settings.track_dir) / track_file(instance)

    def _write(self, instance: str, value: int) -> None:
        Path(self.settings.track_dir).mkdir(mode=0o755, parents=True, exist_ok=True)
        # in place (keepalived watches the file itself), and never truncated: the content is
        # always two bytes, overwritten at once, so no reader (keepalived, the beacon) can
        # catch an empty file between a truncate and a write and read it as "0"
        fd = os.open(self.path(instance), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, b"1\n" if value else b"0\n", 0)
            os.ftruncate(fd, 2)  # a longer file someone else wrote: cut after the value
        finally:
            os.close(fd)

    def _read(self, instance: str) -> bytes:
        try:
            return self.path(instance).read_bytes()[:16]
        except OSError:
            return b""

    def reset(self) -> None:
        """Clear every instance's file (at start: nothing is inherited)."""
        for name in self.settings.instances:
            try:
                self._write(name, 0)
            except OSError as exc:
                log.error("vrrp_yield_reset_failed", instance=name, error=str(exc))

    def set(self, instance: str, seconds: int) -> dict[str, Any]:
        """Yield ``instance`` for ``seconds`` (0 ends it now); what changed."""
        if instance not in self.settings.instances:
            raise YieldRefused(
                f"{instance!r} is not an instance this node may yield"
                f" (minion.yaml vrrp.instances: {', '.join(self.settings.instances)})"
            )
        if seconds > self.settings.max_seconds:
            raise YieldRefused(
                f"{seconds} s is over this node's max_seconds ({self.settings.max_seconds})"
            )
        was = self.remaining(instance)
        timer = self._timers.pop(instance, None)
        if timer is not None:
            timer.cancel()
        if self._read(instance) != (b"1\n" if seconds > 0 else b"0\n"):
            self._write(instance, 1 if seconds > 0 else 0)  # a renewal only moves the deadline
        if seconds > 0:
            self._until[instance] = time.monotonic() + seconds
            self._timers[instance] = asyncio.get_running_loop().call_later(
                seconds, self._expire, instance
            )
        else:
            self._until.pop(instance, None)
        log.info("vrrp_yield", instance=instance, seconds=seconds, was=round(was, 1))
        return {"instance": instance, "yielded": seconds > 0, "was": round(was, 1)}

    def _expire(self, instance: str) -> None:
        self._timers.pop(instance, None)
        self._until.pop(instance, None)
        try:
            self._write(instance, 0)
            log.info("vrrp_yield_ended", instance=instance, why="not renewed")
        except OSError as exc:  # retried: a yield must not outlive its deadline silently
            log.error("vrrp_yield_end_failed", instance=instance, error=str(exc), retry_s=1)
            self._timers[instance] = asyncio.get_running_loop().call_later(
                1.0, self._expire, instance
            )

    def remaining(self, instance: str) -> float:
        """Seconds left of the yield on ``instance`` (0 when none)."""
        return max(0.0, self._until.get(instance, 0.0) - time.monotonic())

    def close(self) -> None:
        """Stop the timers and clear the files: a stopping minion leaves no yield behind."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._until.clear()
        self.reset()
