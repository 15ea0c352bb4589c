"""Learn of a service's death from the kernel, and tell keepalived at once.

keepalived's script check sees a dead HAProxy only at its next run (interval 1 s minimum,
``fall 2``: ~2 s), and only then lowers the node's priority; clients of the VIP see nothing
in between. The minion can know within milliseconds: it holds a *pidfd* on the service's
process (``pidfd_open(2)``), which becomes readable the moment the process exits -- no
polling. It then writes ``1`` into a file keepalived tracks (``track_file ... weight 0`` in
the shipped keepalived state: FAULT), so keepalived gives up the VIP at once and a backup
takes it with its next advert; ``0`` goes back once the service runs again (started by the
minion's supervisor, a person or an apply). The script check stays as the fallback for when
the minion itself is down.

A reload (``haproxy ... -sf <old>``) ends the old process after the new one wrote the pid
file; an exit is only a death when, after ``grace``, the pid file names no live process.
On start the file is set from the truth (a ``1`` a crashed minion left behind is cleared
when the service runs); on a clean stop it is cleared (the script check decides alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from hactl.log import get_logger
from hactl.minion.executors.base import ServiceCommands

#: the slowest look for a daemon that stays down (the first is ``recheck``)
RECHECK_MAX = 1.0

log = get_logger("hactl.minion")


def write_flag(path: Path, up: bool) -> None:
    """Write ``1``/``0`` in place, never truncated first: no reader can see it empty."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"1\n" if up else b"0\n", 0)
        os.ftruncate(fd, 2)
    finally:
        os.close(fd)


def read_flag(path: Path) -> bool:
    """Whether the file holds a non-zero value (missing or empty: False)."""
    try:
        text = path.read_bytes()[:32].decode("ascii", "replace").strip()
    except OSError:
        return False
    return text not in ("", "0")


async def wait_exit(pid: int) -> bool:
    """Wait until ``pid`` exits (True), or False at once when it is already gone. Needs
    ``pidfd_open`` (Linux 5.3; Debian 12 ships 6.1)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return True


class ProcessWatch:
    """Watches one service's process; keeps its keepalived flag file true to it."""

    def __init__(
        self,
        name: str,
        service: ServiceCommands,
        flag: Path,
        *,
        grace: float = 0.05,
        recheck: float = 0.2,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        if not service.pidfile:
            raise ValueError(f"{name}: a watched service needs a pidfile in minion.yaml")
        self.name = name
        self.service = service
        self.flag = flag
        self.grace = grace
        self.recheck = recheck
        self.on_change = on_change
        self.down: bool | None = None
        self.deaths = 0
        self.last_death: float | None = None  # time.time() of the last flagged death

    def _set(self, down: bool, why: str) -> None:
        if down == self.down:
            return
        write_flag(self.flag, down)
        self.down = down
        log.info("service_flag", service=self.name, down=down, why=why, flag=str(self.flag))
        if self.on_change is not None:
            self.on_change(self.name, down)

    async def run(self) -> None:
        """Forever: flag the truth, wait for the process to exit, re-check after a grace."""
        delay = self.recheck
        while True:
            pid = self.service.pid()
            if pid is None:
                self._set(True, "not running")
                # a pid file gone means a scan of /proc for the daemon (ServiceCommands.pid):
                # while it stays down the looks slow to RECHECK_MAX (a HAProxy that could not
                # start cost its minion 16.5 % of a core at 5 looks a second)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(self.recheck, RECHECK_MAX))
                continue
            delay = self.recheck
            self._set(False, f"running (pid {pid})")
            if not await wait_exit(pid):
                continue
            if self.service.pid() is None:  # not a reload that already wrote a new pid
                await asyncio.sleep(self.grace)
            if self.service.pid() is None:
                self.deaths += 1
                self.last_death = time.time()
                self._set(True, f"pid {pid} exited")

    def close(self) -> None:
        """A clean stop: clear the flag (keepalived's own check decides alone)."""
        with contextlib.suppress(OSError):
            write_flag(self.flag, False)
        self.down = None
