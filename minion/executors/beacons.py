"""``beacon.resync``: every beacon of this minion polls now and reports, change or not.

A master that starts asks each node it knows (master/reactor/runtime.py): the view it read
back from KV may be older than what the nodes run now (a report its predecessor folded in
but could not store), and the next report with no change would come only after
``resync_interval`` (30 s). Nothing runs but the beacons' own reads.
"""

from __future__ import annotations

from typing import Any

from hactl.minion.executors.base import CommandRefused, ExecContext, Executor
from hactl.wire.beacons import RESYNC


async def resync(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Kick every beacon runner; the reports follow on the event stream."""
    if ctx.resync is None:
        raise CommandRefused(RESYNC, "this minion runs no beacon")
    names = ctx.resync()
    return {
        "result": True,
        "changes": {},
        "comment": f"{len(names)} beacons report now: {', '.join(names)}",
        "beacons": names,
    }


BEACON_RESYNC = Executor(name=RESYNC, args=(), body=resync)
