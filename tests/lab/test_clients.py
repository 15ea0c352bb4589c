"""OpenStack's own clients are the judge (issue 24): oslo.messaging RPC and an oslo.db writer,
configured by the file hactl renders (state clients), through real faults on the shared lab.

The figures (gaps, calls failed) are reported, never asserted: the machine is shared and
noisy (benchmarks/clients.py repeats each fault). What is asserted is what a client must
never see: a call run twice, a call run but reported failed, a committed row lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.workload import Workload, prepare
from tests.lab.conftest import report
from tests.lab.helpers import (
    DrainWatch,
    clients_line,
    cut_galera,
    hactl,
    heal_galera,
    never_wrong,
    server_status,
    stored_events,
    wait_until,
)

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _line(fault: str, f: dict[str, Any]) -> str:
    return f"clients: {fault}: {clients_line(f)}"


def _holder(lab: L.Lab) -> tuple[str, str]:
    """The internal VIP and the node holding it."""
    vip = lab.net.vip(0)
    wait_until(lambda: len(L.holders(lab)[vip]) == 1, 20, "one VIP holder")
    return vip, L.holders(lab)[vip][0]


def _pid(lab: L.Lab, node: str, daemon: str) -> int:
    pid = lab.daemon_pid(node, daemon)
    assert pid, f"{daemon} runs on {node}"
    return pid


def _never_wrong(f: dict[str, Any]) -> None:
    never_wrong(f)
    r, d = f["rpc"], f["db"]
    assert r["calls"] > 50 and d["transactions"] > 50, f  # the clients worked throughout
    assert r["executed_but_failed"] == 0, f  # these faults never leave a call in doubt


def test_a_vip_that_leaves_a_node_takes_its_connections_with_it(lab: L.Lab) -> None:
    """SIGKILL of keepalived on the holder leaves its VIP behind until keepalived is back;
    when it is removed the minion ends every connection accepted on it there at once (a
    broker would otherwise keep feeding consumers that no client reads)."""
    vip, holder = _holder(lab)
    with Workload(*prepare(lab)) as work:
        time.sleep(2.0)
        pid = _pid(lab, holder, "keepalived")
        t0 = time.time()
        since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        os.kill(pid, signal.SIGKILL)
        # applied at once: the killed parent's children are still exiting and the parent is
        # an unreaped zombie; the minion's start waits until they are gone (services.
        # keepalived.pidfiles), or keepalived would take them for a running copy and quit
        # keepalived back (the shared lab is not supervised: apply starts it), which drops
        # the VIP it left behind; the minion sees the address go
        hactl(lab, "apply", str(states_dir()), "--target", holder, "--pillar",
              str(lab.dir / "lab-pillar.yaml"), timeout=120)  # fmt: skip
        wait_until(lambda: L.holders(lab)[vip] and holder not in L.holders(lab)[vip], 30,
                   f"the VIP gone from {holder}")  # fmt: skip
        time.sleep(5.0)
    figures = work.figures(t0 - 0.5)
    report(_line(f"keepalived kill -9 on {holder}, started again by apply", figures))
    _never_wrong(figures)
    log = (lab.node_dir(holder) / "minion.log").read_text().splitlines()
    ended = [json.loads(x) for x in log if "vip_connections_ended" in x and f'"{vip}"' in x]
    removed = [e for e in ended if e["why"] == "address removed" and e["timestamp"] >= since]
    assert removed and removed[-1]["connections"] >= 1, ended[-3:]
    report(
        f"clients: {vip} left {holder}: its minion ended {removed[-1]['connections']} "
        "connection(s) accepted on it there"
    )


def test_db_through_a_partition_of_the_galera_writer(lab: L.Lab) -> None:
    """The Galera writer's replication traffic cut (it goes non-Primary while mariadbd keeps
    answering on 3306) under an oslo.db writer with hactl's settings: no committed row lost,
    and writes resume on another member once the minion's agent takes the writer out."""
    _, holder = _holder(lab)
    writer = lab.net.nodes[0]  # the pillar's galera.writer in the lab
    with Workload(*prepare(lab), rpc=False) as work:
        time.sleep(2.0)
        t0 = time.time()
        cut_galera(lab, writer)
        try:
            wait_until(
                lambda: server_status(lab, holder).get(f"galera/{writer}") != "UP",
                30,
                f"galera/{writer} out of {holder}'s HAProxy",
                step=0.01,
            )
            t_out = time.time()
            time.sleep(4.0)
        finally:
            heal_galera(lab, writer)
    figures = work.figures(t0 - 0.5)
    report(f"clients: Galera writer {writer} partitioned (VIP on {holder}), out of HAProxy "
           f"{t_out - t0:.2f} s after the cut: {clients_line(figures)}")  # fmt: skip
    db = figures["db"]
    assert db["transactions"] > 50 and db["rows_lost"] == 0, figures
    # a commit in flight when the writer lost its Primary component fails (1180: it did not
    # commit, and oslo.db does not retry it); none started after HAProxy took the writer out
    late = [x for x in work.samples["db"]["txns"] if not x[3] and x[0] > t_out + 0.05]
    assert not late, late
    wait_until(lambda: d.galera_state(lab.node_dir(writer) / "mysql/mysqld.sock")
               == ("Primary", "Synced"), 60, f"{writer} Synced again")  # fmt: skip


#: the library faketime(1) preloads: a minion whose clock is 10 minutes slow
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.parametrize("clock", ["+0s", "-10m"])
def test_a_restarted_minion_knows_its_keepalived_at_once(lab: L.Lab, clock: str) -> None:
    """A minion restarted while keepalived runs on hears no transition on the FIFO; it asks
    keepalived (JSON dump) and reports BACKUP at once, so nothing of its node is taken out on
    any HAProxy at any time -- with its clock right, or 10 minutes slow (it was drained until
    some transition; a clock behind must not make its reports look old)."""
    _, holder = _holder(lab)
    node = next(n for n in lab.net.nodes if n != holder)
    env = {"FAKETIME": clock, "LD_PRELOAD": LIBFAKETIME} if clock != "+0s" else None
    with DrainWatch(lab, (node,), ("be_", "galera/", "rabbitmq/")) as watch:
        time.sleep(1.0)
        L.stop_minion(lab, node)
        since = datetime.now(UTC)
        L.start_minion(lab, node, env)
        lab.save()
        try:
            wait_until(lambda: (lab.node_dir(node) / "minion.log").stat().st_size > 0, 30, "up")
            time.sleep(6.0)  # its first reports, and a few reconcile passes
            reports = asyncio.run(stored_events(lab, f"hactl/beacon/{node}/vrrp", since))
        finally:
            if env:  # the lab's minion again, on the right time
                L.stop_minion(lab, node)  # the skewed one
                L.start_minion(lab, node)
                lab.save()
                time.sleep(3.0)
    assert reports, f"no vrrp report of {node}'s new minion"
    first = reports[0].data["items"]
    states = {i: first[i]["state"] for i in ("VI_INTERNAL", "VI_EXTERNAL")}
    assert states == {"VI_INTERNAL": "BACKUP", "VI_EXTERNAL": "BACKUP"}, first
    took = reports[0].ts - since.timestamp()  # the minion's own clock: its skew included
    assert watch.seen == {} and watch.samples > 10, watch.seen
    report(
        f"minion of {node} restarted (clock {clock}): its first vrrp report "
        f"({took:+.2f} s on its clock after the start) says BACKUP (asked of keepalived); "
        f"nothing of {node} taken out on any HAProxy ({watch.samples} samples)"
    )
