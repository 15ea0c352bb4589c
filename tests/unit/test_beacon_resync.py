"""``beacon.resync``: a kicked beacon polls at once and reports though nothing changed."""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.minion.beacons.runner import BeaconRunner
from hactl.minion.executors import REGISTRY, dispatch
from hactl.minion.executors.base import ExecContext
from hactl.wire.beacons import RESYNC
from hactl.wire.commands import CommandRequest
from hactl.wire.envelope import Event


class Still:
    """A beacon whose state never changes, polled every hour unless woken."""

    name = "still"
    interval = 3600.0
    significant = frozenset({"state"})

    def __init__(self) -> None:
        self.polls = 0

    async def poll(self) -> dict[str, dict[str, Any]]:
        """The same snapshot every time."""
        self.polls += 1
        return {"x": {"state": "up"}}

    async def close(self) -> None:
        """Nothing to release."""


async def test_a_kick_reports_at_once_without_a_change() -> None:
    """The first poll reports; an hour-long interval and no change keep it quiet; a kick
    makes it poll now and report (flagged a resync, no changes), once per kick."""
    sent: list[Event] = []
    beacon = Still()
    runner = BeaconRunner(beacon, "ctl1", sent.append, resync_interval=3600.0)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if sent:
                break
        await asyncio.sleep(0.05)
        assert len(sent) == 1 and beacon.polls == 1
        runner.kick()
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(sent) == 2:
                break
        assert len(sent) == 2 and beacon.polls == 2
        assert sent[1].data["resync"] is True and sent[1].data["changes"] == []
        await asyncio.sleep(0.05)
        assert len(sent) == 2  # one report per kick
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_command_kicks_every_beacon_and_is_refused_without_any() -> None:
    """``beacon.resync`` is in the allowlist, takes no arguments, and answers with the
    beacons it kicked; a minion without beacons refuses it with the reason."""
    assert RESYNC in REGISTRY
    kicked: list[str] = []

    def resync() -> list[str]:
        kicked.append("now")
        return ["vrrp", "haproxy"]

    ctx = ExecContext(minion_id="ctl1", resync=resync)
    reply = await dispatch(ctx, CommandRequest(cmd=RESYNC, args={}))
    assert reply.ok and reply.result["beacons"] == ["vrrp", "haproxy"] and kicked == ["now"]
    reply = await dispatch(ctx, CommandRequest(cmd=RESYNC, args={"x": 1}))
    assert not reply.ok and kicked == ["now"]
    reply = await dispatch(ExecContext(minion_id="ctl1"), CommandRequest(RESYNC))
    assert not reply.ok and "no beacon" in reply.error_message
