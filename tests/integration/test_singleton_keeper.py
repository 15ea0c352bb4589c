"""The holder's side of a singleton lease (minion/singleton.py) with real processes and a
scripted master: a grant starts the copy (and its guard), renewals nobody acknowledges stop it
at its stop instant, a dead copy is restarted in place and at the threshold stopped and given
back, and "held by another node" stops it at once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from hactl.errors import BusError
from hactl.minion.executors.base import ExecContext, ServiceCommands
from hactl.minion.singleton import SingletonKeeper
from hactl.wire.singleton import Grant, SingletonSpec, encode_reply, renew_request

pytestmark = pytest.mark.integration

SPEC = SingletonSpec(
    "itest", "itest-svc", ("ctl1", "ctl2"), lease=3.0, renew=0.3, monitor=0.2, stop_timeout=1.0
)


class Master:
    """Answers renewals as scripted: ``answer`` (None: no answer at all)."""

    def __init__(self) -> None:
        self.answer: Grant | None = Grant(True, 7)
        self.items: list[Any] = []

    async def request_raw(self, subject: str, data: bytes, timeout: float) -> bytes:
        """The bus's raw request (hactl.bus.Bus.request_raw), answered from the script."""
        self.items.append(renew_request(data)[0])
        if self.answer is None:
            raise BusError("mem://", f"no answer on {subject} within {timeout:g} s")
        return encode_reply(True, {"itest": self.answer})


def _keeper(tmp: Path) -> tuple[SingletonKeeper, Master, Path]:
    pidfile = tmp / "svc.pid"
    svc = ServiceCommands(
        start=("sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}"),
        stop=("kill", "-TERM", "{pid}"),
        pidfile=str(pidfile),
    )
    ctx = ExecContext("ctl1", services={"itest-svc": svc}, command_timeout=10)
    keeper = SingletonKeeper("ctl1", tmp / "singletons", ctx)
    assert keeper.configure(SPEC) == ""
    master = Master()
    keeper.bus = master  # type: ignore[assignment]  # the one Bus method the keeper calls
    return keeper, master, pidfile


def _alive(pidfile: Path) -> bool:
    return ServiceCommands(pidfile=str(pidfile)).pid() is not None


async def _until(pred: Any, timeout: float) -> None:
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not in time")


async def test_granted_it_runs_unrenewed_it_stops_by_itself(tmp_path: Path) -> None:
    """Held: the copy and its guard run; then no answer at all: the copy is stopped by its
    lease's end (the keeper or, when it lags, the guard; the beacon says why) and it is not
    started again."""
    keeper, master, pidfile = _keeper(tmp_path)
    task = asyncio.create_task(keeper.run())
    try:
        await _until(lambda: _alive(pidfile), 5)
        assert (tmp_path / "singletons" / "itest.stop_at").exists()
        master.answer = None
        await _until(lambda: not _alive(pidfile), SPEC.lease + 1)
        await asyncio.sleep(1.0)
        assert not _alive(pidfile)
        snap = keeper.snapshot()["itest"]
        # the keeper stops it at sent + lease - stop time; on a loaded machine its guard (the
        # backstop, at the lease's end) may get there first -- both say why
        why = snap["last"]
        assert not snap["holding"] and ("lease not renewed" in why or "guard fenced" in why), why
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_dead_copy_restarts_in_place_then_is_given_back(tmp_path: Path) -> None:
    """Killed once: started again in place; killed again (threshold 2): stopped, and the next
    renewal gives the lease back (release)."""
    keeper, master, pidfile = _keeper(tmp_path)
    task = asyncio.create_task(keeper.run())
    try:
        await _until(lambda: _alive(pidfile), 5)
        first = int(pidfile.read_text())
        os.kill(first, signal.SIGKILL)
        await _until(lambda: _alive(pidfile) and int(pidfile.read_text()) != first, 5)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        await _until(lambda: any(i.release for i in master.items), 5)
        assert not _alive(pidfile)
        released = next(i for i in master.items if i.release)
        assert released.failures == 2 and not released.running
        assert "failure threshold" in keeper.snapshot()["itest"]["last"]  # stopped, then given
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_held_by_another_node_stops_it_at_once(tmp_path: Path) -> None:
    """The master says another node holds it: the copy stops at the next renewal."""
    keeper, master, pidfile = _keeper(tmp_path)
    task = asyncio.create_task(keeper.run())
    try:
        await _until(lambda: _alive(pidfile), 5)
        master.answer = Grant(False, 0, "held by ctl2")
        await _until(lambda: not _alive(pidfile), 3)
        await _until(lambda: "held by ctl2" in keeper.snapshot()["itest"]["last"], 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
