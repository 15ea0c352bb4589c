"""Galera recovery survives the master's death at each step (issue 13).

Every mariadbd is killed -9 after committed writes; the master is killed -9 right after the
recovery's positions, right after its bootstrap, and during the first rejoin, and a new master
started. The recovery must be finished by the new master -- the redelivered trigger re-plans
(refused while a Primary exists), the level-triggered `galera-node-down-reconcile` rejoins the
rest -- with every committed row kept and exactly one bootstrap per crash (the epoch's lease).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from hactl.bus import Bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.wire.envelope import Event
from tests.lab.conftest import report
from tests.lab.helpers import recent_decisions, stored_events, wait_until

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)

ROWS = 100


def _sock(lab: L.Lab, node: str) -> Path:
    return lab.node_dir(node) / "mysql/mysqld.sock"


def _all_synced(lab: L.Lab) -> bool:
    return all(d.galera_state(_sock(lab, n)) == ("Primary", "Synced") for n in lab.net.nodes)


async def _crash_and_kill_master_at(lab: L.Lab, step: str, delay: float) -> float:
    """Kill every mariadbd, then the master ``delay`` s after the recovery's ``step`` event;
    the monotonic time of the crash."""
    bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="resume", timeout=5)
    seen = asyncio.Event()

    async def on_step(_: Event) -> None:
        seen.set()

    try:
        await bus.subscribe(f"hactl/event/galera/{step}", on_step)
        pids = [lab.daemon_pid(n, "galera") for n in lab.net.nodes]
        assert all(pids), pids
        t0 = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        await asyncio.wait_for(seen.wait(), 90)
        await asyncio.sleep(delay)
        os.kill(lab.pids["master"], signal.SIGKILL)
        return t0
    finally:
        await bus.close()


def test_master_killed_at_each_step_a_new_master_finishes(lab: L.Lab) -> None:
    """After positions, after the bootstrap, during the first rejoin: a new master finishes
    the recovery; every committed row is there, one bootstrap per crash."""
    s1 = _sock(lab, "ctl1")
    d.galera_sql(s1, "CREATE DATABASE IF NOT EXISTS labr")
    d.galera_sql(s1, "CREATE TABLE IF NOT EXISTS labr.r (id INT PRIMARY KEY)")
    d.galera_sql(s1, "DELETE FROM labr.r")
    figures = []
    written = 0
    for step, delay in (("positions", 0.0), ("bootstrap", 0.0), ("bootstrap", 0.5)):
        wait_until(lambda: _all_synced(lab), 120, "3 Synced before the crash", step=0.5)
        writer = next(n for n in lab.net.nodes if d.galera_state(_sock(lab, n)))
        for i in range(written + 1, written + ROWS + 1):
            d.galera_sql(_sock(lab, writer), f"INSERT INTO labr.r VALUES ({i})")
        written += ROWS
        since = datetime.now(UTC)
        t0 = asyncio.run(_crash_and_kill_master_at(lab, step, delay))
        t_kill = time.monotonic()
        L.start_master(lab, "master")
        try:
            t_done = wait_until(lambda: _all_synced(lab), 180, f"3 Synced (killed at {step})", 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{recent_decisions(lab, '4m')}") from None
        for n in lab.net.nodes:
            rows = d.galera_sql(_sock(lab, n), "SELECT COUNT(*), MAX(id) FROM labr.r")
            assert rows[0] == (written, written), (step, n, rows)
        # bootstraps actually run: the minions' job returns (a master killed right after the
        # command was sent never publishes its bootstrap step, but the node did bootstrap)
        rets = asyncio.run(stored_events(lab, "hactl/job/*/ret/*", since))
        boots = [
            e
            for e in rets
            if e.data.get("cmd") == "galera.bootstrap"
            and (e.data.get("result") or {}).get("result")
        ]
        assert len(boots) == 1, (step, [(e.tag, e.data) for e in boots])
        label = step if delay == 0 else "the first rejoin"
        figures.append(
            f"killed after {label} ({t_kill - t0:.1f} s into the crash): 3 Synced "
            f"{t_done - t0:.1f} s after the crash, {written}/{written} rows, 1 bootstrap"
        )
    report("galera resume, master kill -9: " + "; ".join(figures))
