"""systemd's notify protocol (``sd_notify(3)``), without libsystemd: readiness and watchdog.

Under a unit with ``Type=notify`` systemd sets ``NOTIFY_SOCKET``; a daemon says ``READY=1``
when it is really ready (the master: its stream and reactor up; the minion: its beacons and
supervision running), ``STATUS=...`` for ``systemctl status``, ``STOPPING=1`` on the way
out. With ``WatchdogSec=`` systemd also sets ``WATCHDOG_USEC``: :func:`watchdog` sends
``WATCHDOG=1`` from the event loop every half of it, so a hung loop stops the pings and
systemd restarts the daemon. Outside systemd every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket


def notify(*lines: str) -> bool:
    """Send ``lines`` (``READY=1``, ``STATUS=...``) to systemd; False when not under it."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    target = "\0" + addr[1:] if addr.startswith("@") else addr  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(target)
            s.sendall("\n".join(lines).encode())
    except OSError:
        return False
    return True


def watchdog_period(env: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None without a watchdog (or
    when ``WATCHDOG_PID`` names another process)."""
    e = os.environ if env is None else env
    usec, pid = e.get("WATCHDOG_USEC", ""), e.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


async def watchdog() -> None:
    """Ping systemd's watchdog from the event loop until cancelled (returns at once without)."""
    period = watchdog_period()
    if period is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(period)
