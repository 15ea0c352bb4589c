"""E2E 2 and 3: a Galera node partitioned, then every mariadbd killed -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from datetime import UTC, datetime

from hactl.bus import Bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.workload import Workload, prepare
from hactl.minion.executors.base import ServiceCommands
from hactl.wire.envelope import Event
from tests.lab.conftest import report
from tests.lab.helpers import (
    clients_line,
    cut_galera,
    hactl,
    heal_galera,
    never_wrong,
    recent_decisions,
    server_status,
    stored_events,
    wait_until,
)
from tests.lab.supervision_support import copies

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _sock(lab: L.Lab, node: str) -> object:
    return lab.node_dir(node) / "mysql/mysqld.sock"


def _galera_everywhere(lab: L.Lab, server: str) -> set[str]:
    return {server_status(lab, n).get(f"galera/{server}", "?") for n in lab.net.nodes}


async def test_galera_partition_out_and_back(lab: L.Lab) -> None:
    """Galera traffic of ctl3 cut: non-Primary -> out of every HAProxy galera backend; healed: in."""
    node = "ctl3"
    seen: dict[str, float] = {}
    bus = await Bus.connect(
        lab.nats_url, lab.client_auth(), name="lab-test-galera", timeout=5, reconnect=True
    )

    async def on_galera(e: Event) -> None:
        item = e.data.get("items", {}).get("local", {})
        if item.get("running") and not item.get("synced") and "non_primary" not in seen:
            seen["non_primary"] = time.monotonic()

    await bus.subscribe(f"hactl/beacon/{node}/galera", on_galera)
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(cut_galera, lab, node)
        await asyncio.to_thread(wait_until, lambda: "non_primary" in seen, 60, "ctl3 non-Primary")
        t_out = await asyncio.to_thread(
            wait_until, lambda: _galera_everywhere(lab, node) == {"MAINT"}, 30, "ctl3 out"
        )
        report(
            f"e2e2 Galera partition of {node}: non-Primary reported {seen['non_primary'] - t0:.2f} s"
            f" after the cut; out of all 3 HAProxy galera backends {t_out - seen['non_primary']:.2f}"
            " s after non-Primary (a clustercheck HTTP check: ~10 s; the TCP check alone never)"
        )
        t1 = time.monotonic()
        await asyncio.to_thread(heal_galera, lab, node)
        t_back = await asyncio.to_thread(
            wait_until, lambda: _galera_everywhere(lab, node) == {"UP"}, 60, "ctl3 back in"
        )
        report(
            f"e2e2 healed: {node} Synced and back in every galera backend after {t_back - t1:.2f} s"
        )
    finally:
        await bus.close()
        await asyncio.to_thread(heal_galera, lab, node)


def test_galera_all_killed_recovers_every_row(lab: L.Lab) -> None:
    """kill -9 all three mariadbd: positions, bootstrap the most advanced, rejoin; rows intact."""
    s1 = _sock(lab, "ctl1")
    d.galera_sql(s1, "CREATE DATABASE IF NOT EXISTS labt")
    d.galera_sql(s1, "CREATE TABLE IF NOT EXISTS labt.r (id INT PRIMARY KEY)")
    d.galera_sql(s1, "DELETE FROM labt.r")
    for i in range(1, 301):
        d.galera_sql(s1, f"INSERT INTO labt.r VALUES ({i})")
    uuid = str(
        dict(d.galera_sql(s1, "SHOW STATUS LIKE 'wsrep_cluster_state_uuid'"))[
            "wsrep_cluster_state_uuid"
        ]
    )  # type: ignore[arg-type]
    pids = [lab.daemon_pid(n, "galera") for n in lab.net.nodes]
    assert all(pids)
    t0 = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]

    def all_synced() -> bool:
        states = [d.galera_state(_sock(lab, n)) for n in lab.net.nodes]  # type: ignore[arg-type]
        return all(s == ("Primary", "Synced") for s in states)

    try:
        t_done = wait_until(all_synced, 180, "3 Synced after the crash", step=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{recent_decisions(lab)}") from None
    for n in lab.net.nodes:
        rows = d.galera_sql(_sock(lab, n), "SELECT COUNT(*), MAX(id) FROM labt.r")  # type: ignore[arg-type]
        assert rows[0] == (300, 300), (n, rows)
        size = dict(d.galera_sql(_sock(lab, n), "SHOW STATUS LIKE 'wsrep_cluster_s%'"))  # type: ignore[arg-type]
        assert size["wsrep_cluster_size"] == "3" and size["wsrep_cluster_state_uuid"] == uuid
    t_up = wait_until(
        lambda: all(_galera_everywhere(lab, n) == {"UP"} for n in lab.net.nodes),
        60,
        "galera servers UP again in HAProxy",
    )
    report(
        f"e2e3 kill -9 of all 3 mariadbd: Primary with 3 Synced after {t_done - t0:.2f} s "
        f"(hactl: positions, bootstrap, rejoin one by one); 300/300 rows, uuid {uuid} kept; "
        f"all galera servers UP in every HAProxy after {t_up - t0:.2f} s"
    )


def _synced(lab: L.Lab, node: str) -> bool:
    try:
        rows = dict(d.galera_sql(_sock(lab, node), "SHOW STATUS LIKE 'wsrep_local_state_comment'"))
    except Exception:  # not answering yet
        return False
    return rows.get("wsrep_local_state_comment") == "Synced"


def test_maintenance_is_left_alone_then_rejoined(lab: L.Lab) -> None:
    """hactl maint on ctl2 -c galera, stop its mariadbd: the edge rejoin and the periodic
    (resync) rejoin that follow are both suppressed with reason maintenance and nothing starts
    it again; maint off: rejoined and Synced."""
    wait_until(lambda: all(_synced(lab, n) for n in lab.net.nodes), 120, "all Synced")
    hactl(lab, "maint", "on", "ctl2", "-c", "galera", "--reason", "lab: planned work")
    pid = lab.daemon_pid("ctl2", "galera")
    assert pid
    since = datetime.now(UTC)
    os.kill(pid, signal.SIGTERM)  # a clean stop, as an operator would
    wait_until(lambda: lab.daemon_pid("ctl2", "galera") is None, 60, "mariadbd on ctl2 stopped")
    t_stop = time.monotonic()

    def suppressed() -> set[str]:
        return {
            e.tag.split("/")[2]
            for e in asyncio.run(stored_events(lab, "hactl/reactor/*/suppressed", since))
            if e.data.get("reason") == "maintenance" and e.data.get("key") == "ctl2"
        }

    rules = {"galera-node-rejoin", "galera-node-down-reconcile"}
    # evidence, not a fixed wait: the edge and then a resync (every 10 s in the lab) evaluated
    wait_until(lambda: rules <= suppressed(), 60, "both rejoin rules suppressed", step=2.0)
    time.sleep(5.0)  # past the edge rule's debounce (4 s): still nothing started it
    assert lab.daemon_pid("ctl2", "galera") is None, "nothing restarted it under maintenance"
    trail = recent_decisions(lab, "2m")
    assert "suppressed maintenance" in trail, trail
    t_off = time.monotonic()
    hactl(lab, "maint", "off", "ctl2", "-c", "galera")
    took = wait_until(lambda: _synced(lab, "ctl2"), 120, "ctl2 rejoined and Synced") - t_off
    report(
        f"maintenance: ctl2's mariadbd left stopped for {t_off - t_stop:.0f} s under "
        f"maintenance (trail: suppressed maintenance); after maint off Synced in {took:.1f} s"
    )


def _stopped(lab: L.Lab, node: str) -> bool:
    return lab.daemon_pid(node, "galera") is None


def test_a_full_datadir_takes_the_node_out_and_rejoins_once_freed(lab: L.Lab) -> None:
    """ctl3's datadir (its own filesystem in the lab) filled to the last byte under 1 MiB
    writes: ctl3 leaves the cluster and HAProxy; no start is tried while its disk stays full
    (it would fail and spend a try); space freed, it is Synced and UP in every HAProxy again."""
    node, writer = "ctl3", _sock(lab, "ctl1")
    data = lab.node_dir(node) / "mysql/data"
    fill = data / "hactl-test-fill"
    d.galera_sql(writer, "CREATE DATABASE IF NOT EXISTS labt")
    d.galera_sql(writer, "CREATE TABLE IF NOT EXISTS labt.fill (id INT PRIMARY KEY, b LONGBLOB)")
    d.galera_sql(writer, "DELETE FROM labt.fill")
    since = datetime.now(UTC)
    with Workload(*prepare(lab)) as work:  # oslo.messaging and oslo.db through the VIP
        time.sleep(2.0)
        wall = time.time()
        st = os.statvfs(data)
        subprocess.run(
            ["fallocate", "-l", str(st.f_bavail * st.f_frsize), str(fill)], check=False, timeout=30
        )
        t0 = time.monotonic()
        try:
            i = 0
            while not _stopped(lab, node) and time.monotonic() - t0 < 90:
                i += 1
                with contextlib.suppress(Exception):  # the cluster may stall while ctl3 chokes
                    d.galera_sql(
                        writer, f"INSERT INTO labt.fill VALUES ({i}, REPEAT('x', 1048576))"
                    )
                time.sleep(0.05)
            assert _stopped(lab, node), f"{node}'s mariadbd still runs on a full disk ({i} writes)"
            t_out = time.monotonic()
            t_maint = wait_until(
                lambda: _galera_everywhere(lab, node) <= {"MAINT", "DOWN"}, 30, f"{node} out"
            )
            time.sleep(10.0)  # the disk stays full: nothing may try to start it
            starts = [
                e
                for e in asyncio.run(stored_events(lab, "hactl/reactor/>", since))
                if e.tag.endswith("/done") and e.data.get("rule", "").startswith("galera-node")
            ]
            assert starts == [], [e.data for e in starts]
            assert lab.daemon_pid(node, "galera") is None
        finally:
            fill.unlink(missing_ok=True)
        t_freed = time.monotonic()
        try:
            t_synced = wait_until(lambda: _synced(lab, node), 120, f"{node} Synced", step=0.2)
            t_up = wait_until(lambda: _galera_everywhere(lab, node) == {"UP"}, 60, f"{node} UP")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{recent_decisions(lab)}") from None
        finally:
            with contextlib.suppress(Exception):
                d.galera_sql(writer, "DROP TABLE labt.fill")
    clients = work.figures(wall - 0.5)
    never_wrong(clients)
    report(f"clients: {node}'s Galera datadir full, then freed: {clients_line(clients)}")
    report(
        f"galera: {node}'s datadir full under {i} 1 MiB writes: mariadbd gone "
        f"{t_out - t0:.1f} s after the disk filled, out of every HAProxy "
        f"{t_maint - t0:.1f} s; no start while full; space freed: Synced "
        f"{t_synced - t_freed:.1f} s, UP everywhere {t_up - t_freed:.1f} s later"
    )


#: mariadbd found by what it is, not its pid file (the supervision tests' own lookup)
MARIADBD = ServiceCommands(process=("mariadbd",))


def _mariadbd_copies(lab: L.Lab, node: str) -> list[int]:
    """Every mariadbd running in ``node``'s namespace."""
    return copies(lab, MARIADBD, node)


def test_a_killed_mariadbd_without_its_pid_file_is_started_once(lab: L.Lab) -> None:
    """Issue 26, one copy always, for mariadbd (started by the Galera rules from its own
    position, never by the minion's supervisor): its pid file deleted while it runs ->
    nothing done, one copy; then kill -9 -> one copy started, once, no failed start; Synced
    and UP in every HAProxy again."""
    node = lab.net.nodes[-1]  # not the pillar's writer
    pidfile = lab.node_dir(node) / "mysql/mysqld.pid"
    wait_until(lambda: len(_mariadbd_copies(lab, node)) == 1 and _synced(lab, node), 60, "one")
    (pid,) = _mariadbd_copies(lab, node)
    since = datetime.now(UTC)
    pidfile.unlink()
    time.sleep(4.0)  # the beacon polls every 0.3 s and the rules' debounce is 4 s
    assert _mariadbd_copies(lab, node) == [pid], "a second mariadbd without its pid file"
    acted = asyncio.run(stored_events(lab, "hactl/reactor/galera-*/*", since))
    assert acted == [], [e.tag for e in acted]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    started = wait_until(
        lambda: bool(_mariadbd_copies(lab, node)) and pid not in _mariadbd_copies(lab, node),
        60,
        f"mariadbd on {node} started again",
        step=0.1,
    )
    try:
        synced = wait_until(lambda: _synced(lab, node), 120, f"{node} Synced", step=0.2)
        up = wait_until(lambda: _galera_everywhere(lab, node) == {"UP"}, 60, f"{node} UP")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{recent_decisions(lab)}") from None
    time.sleep(2.0)
    assert len(_mariadbd_copies(lab, node)) == 1, _mariadbd_copies(lab, node)
    trail = asyncio.run(stored_events(lab, "hactl/reactor/galera-*/*", since))
    done = [e.tag for e in trail if e.tag.endswith("/done")]
    failed = [e.data for e in trail if e.tag.endswith("/failed")]
    assert len(done) == 1 and not failed, (done, failed)
    report(
        f"galera: mariadbd on {node} with its pid file deleted: no second copy, nothing done; "
        f"kill -9: started again by {done[0].split('/')[2]} {started - t0:.2f} s after the "
        f"kill (its 4 s debounce: a whole-cluster crash is recovered first), one copy, one "
        f"start, none failed; Synced {synced - t0:.1f} s, UP everywhere {up - t0:.1f} s"
    )
