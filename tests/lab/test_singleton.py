"""Singleton services (issue 17): the lab's stand-in singleton (hactl/lab/singleton_standin.py,
lease 5 s, renew 0.5 s, monitor 0.5 s, stop 1.5 s, failures 2 within 20 s) runs on exactly one node; its
copies log every 50 ms on the host's one monotonic clock, so overlap is checked on the logs,
not inferred. Only HAProxy and keepalived run beside it (no Galera/RabbitMQ: a quick lab).

Repetitions (10 of each fencing case) are in benchmarks/singleton.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

from hactl.bus import Bus
from hactl.lab import bus as lab_bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.baseline import singleton_pidfile
from hactl.lab.config import SINGLETON
from hactl.lab.singleton_standin import intervals, overlaps
from tests.lab.conftest import report
from tests.lab.helpers import master_server, wait_until

# shares one lab with test_approvals (tests/lab/conftest.py: shared modules of one
# configuration run together): HAProxy, keepalived and Galera, the minions' resync 3 s
LAB_SHARED = True
LAB_COMPONENTS = {"haproxy", "keepalived", "galera"}
LAB_RESYNC = 3.0
LEASE = 5.0


def _copies(lab: L.Lab) -> list[str]:
    """Nodes where a copy runs now (its pidfile names a live process)."""
    return [n for n in lab.net.nodes if d.pid_from(singleton_pidfile(lab, n))]


def _target(lab: L.Lab, holder: str) -> str:
    """A node a move may go to: not the holder, no failure left from an earlier test."""
    wait_until(lambda: time.monotonic() - FAILED_AT[0] > 21, 25, "failures expired")
    return next(n for n in lab.net.nodes if n != holder)


FAILED_AT = [0.0]  # when the first test made a node fail it (failure_expiry 20 s)


def _holder(lab: L.Lab) -> str:
    wait_until(lambda: len(_copies(lab)) == 1, 30, "exactly one copy")
    return _copies(lab)[0]


def _log_lines(lab: L.Lab) -> list[str]:
    lines: list[str] = []
    for n in lab.net.nodes:
        f = lab.node_dir(n) / f"{SINGLETON}.log"
        if f.exists():
            lines += f.read_text().splitlines()
    return lines


def _no_overlap(lab: L.Lab) -> None:
    both = overlaps(_log_lines(lab))
    assert both == [], "two copies ran at once: " + "; ".join(both)


def _elsewhere(lab: L.Lab, old: str, timeout: float, t0: float) -> tuple[str, float]:
    """(node, seconds from t0) of the first copy on another node."""
    wait_until(lambda: [n for n in _copies(lab) if n != old], timeout, "a copy elsewhere")
    return next(n for n in _copies(lab) if n != old), time.monotonic() - t0


def _trail(lab: L.Lab, since: str = "2m") -> str:
    res = subprocess.run(
        [L.HACTL, "events", "tail", "--since", since, "--json"],
        capture_output=True,
        text=True,
        timeout=8,
        check=False,
        env=lab.cli_env(),
    )
    out = []
    for line in res.stdout.splitlines():
        e = json.loads(line)
        if "singleton" in e["tag"]:
            out.append(f"{e['ts']:.2f} {e['tag']} {json.dumps(e['data'])[:200]}")
    return "\n".join(out[-40:])


def test_killed_copy_restarts_in_place_then_moves(lab: L.Lab) -> None:
    """kill -9 the copy: its minion starts it again in place; killed again (threshold 2): it is
    stopped, the lease is given back and another node runs it -- within 10 s of the first
    kill, never two at once."""
    holder = _holder(lab)
    pidfile = singleton_pidfile(lab, holder)
    first = d.pid_from(pidfile)
    assert first
    t0 = time.monotonic()
    os.kill(first, signal.SIGKILL)
    in_place = wait_until(lambda: d.pid_from(pidfile) not in (None, first), 10, "in place") - t0
    second = d.pid_from(pidfile)
    assert second
    os.kill(second, signal.SIGKILL)
    FAILED_AT[0] = time.monotonic()
    try:
        node, moved = _elsewhere(lab, holder, 10, t0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_trail(lab)}") from None
    _no_overlap(lab)
    report(
        f"singleton: kill -9 on {holder}: restarted in place after {in_place:.2f} s; killed "
        f"again (threshold 2): running on {node} {moved:.2f} s after the first kill"
    )


def test_silent_partition_of_the_holder(lab: L.Lab) -> None:
    """The holder cut off the bridge (carrier up): its copy stops (lease not renewed) before
    another node's starts; healed, exactly one copy."""
    holder = _holder(lab)
    t0 = time.monotonic()
    lab_bus.set_link(lab, holder, attached=False)
    try:
        gone = wait_until(lambda: holder not in _copies(lab), 3 * LEASE, "old copy stopped") - t0
        node, moved = _elsewhere(lab, holder, 60, t0)
    finally:
        lab_bus.set_link(lab, holder, attached=True)
    _no_overlap(lab)
    report(
        f"singleton: silent partition of {holder}: its copy stopped after {gone:.2f} s "
        f"(lease {LEASE:g} s), running on {node} after {moved:.2f} s; no overlap"
    )


def test_sigstopped_minion_is_fenced_by_the_guard(lab: L.Lab) -> None:
    """The holder's minion SIGSTOPped (hung): the guard, not the minion, stops the copy at the
    end of the lease, before another node starts it; the resumed minion does not restart it."""
    holder = _holder(lab)
    minion = lab.pids[f"minion:{holder}"]
    t0 = time.monotonic()
    os.kill(minion, signal.SIGSTOP)
    try:
        gone = wait_until(lambda: holder not in _copies(lab), 3 * LEASE, "old copy stopped") - t0
        node, moved = _elsewhere(lab, holder, 60, t0)
    finally:
        os.kill(minion, signal.SIGCONT)
    guard = (lab.node_dir(holder) / "run/singletons" / f"{SINGLETON}.guard.log").read_text()
    assert "fenced" in guard, guard[-500:]
    time.sleep(2.0)  # the resumed minion's next renewals: it must not start it again
    assert _copies(lab) == [node]
    _no_overlap(lab)
    report(
        f"singleton: minion of {holder} SIGSTOPped: the guard stopped the copy after "
        f"{gone:.2f} s, running on {node} after {moved:.2f} s; no overlap"
    )


async def _move(lab: L.Lab, to: str) -> None:
    """Ask the master to move the singleton to ``to``; a target not heard renewing yet (its
    minion reconnecting after an earlier test's cut or master restart) is asked again, as an
    operator would, for up to 20 s."""
    bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="test-move", timeout=5)
    try:
        deadline = time.monotonic() + 20
        while True:
            reply = await bus.request("master", "singleton.move", {"name": SINGLETON, "to": to})
            if reply.ok or "not renewing" not in reply.error_message:
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert reply.ok, reply.error_message
    finally:
        await bus.close()


def test_master_killed_during_a_move(lab: L.Lab) -> None:
    """``singleton.move`` then kill -9 the master at once; restarted on its data dir, it takes
    its own leader key back at once (decision 59: no wait for the key's TTL), and then exactly
    one copy runs; two never ran together."""
    holder = _holder(lab)
    to = _target(lab, holder)
    asyncio.run(_move(lab, to))
    time.sleep(0.3)  # the holder is told to stop: the move is under way
    os.kill(lab.pids["master"], signal.SIGKILL)
    d.wait_for(lambda: not d.alive(lab.pids["master"]), 10, "master gone")
    t0 = time.monotonic()
    log = lab.dir / "master.log"
    mark = len(d.read_log(log))
    L.start_master(lab, "master")
    leads = wait_until(lambda: "singletons_leading" in d.read_log(log)[mark:], 40, "leading")
    assert "reconciler_lead_taken_back" in d.read_log(log)[mark:], d.read_log(log)[mark:][-3000:]
    one = wait_until(lambda: len(_copies(lab)) == 1, 3 * LEASE, "exactly one copy")
    time.sleep(LEASE)  # and it stays one
    assert len(_copies(lab)) == 1, _copies(lab)
    _no_overlap(lab)
    report(
        f"singleton: master kill -9 during a move {holder}->{to}: the restarted master led "
        f"{leads - t0:.2f} s after the kill (its own key taken back), one copy on "
        f"{_copies(lab)[0]} at {one - t0:.2f} s; no overlap"
    )


def test_holder_cut_off_while_the_master_restarts(lab: L.Lab) -> None:
    """The holder cut off the bridge (carrier up) and the master restarted at the same
    moment: the cut copy stops at the end of its lease, the restarted master grants the lease
    to another node, never two copies; how long the service was down is reported."""
    holder = _holder(lab)
    log = lab.dir / "master.log"
    mark = len(d.read_log(log))
    t0 = time.monotonic()
    lab_bus.set_link(lab, holder, attached=False)
    try:
        L.stop_master(lab)
        L.start_master(lab, "master", ready_within=120)
        ready = time.monotonic() - t0
        node, moved = _elsewhere(lab, holder, 60, t0)
    finally:
        lab_bus.set_link(lab, holder, attached=True)
    wait_until(lambda: len(_copies(lab)) == 1, 3 * LEASE, "exactly one copy after the heal")
    _no_overlap(lab)
    # when the old copy last lived: its own log (50 ms ticks on the host's monotonic clock)
    old = [iv for iv in intervals(_log_lines(lab)) if iv[0] == holder and iv[2] <= t0]
    gone = max((iv[3] for iv in old), default=t0) - t0
    report(
        f"singleton: {holder} cut off while the master restarted (ready {ready:.2f} s): its "
        f"copy last alive {gone:.2f} s after the cut, running on {node} after {moved:.2f} s "
        f"(service down {moved - gone:.2f} s); no overlap; the stop "
        + (
            "could not give the leader key back, the restarted master took it back"
            if "reconciler_lead_taken_back" in d.read_log(log)[mark:]
            else "gave the leader key back"
        )
    )


def test_nats_server_killed_during_a_move(lab: L.Lab) -> None:
    """``singleton.move`` then kill -9 the NATS server the master uses: the move completes or
    is redone; exactly one copy, never two."""
    holder = _holder(lab)
    to = _target(lab, holder)
    victim = master_server(lab)
    asyncio.run(_move(lab, to))
    time.sleep(0.2)
    os.kill(lab.pids[f"nats:{victim}"], signal.SIGKILL)
    try:
        t0 = time.monotonic()
        wait_until(lambda: _copies(lab) and _copies(lab) != [holder], 3 * LEASE + 20, "moved")
        moved = time.monotonic() - t0
    finally:
        lab_bus.start_nats(lab, victim)
    time.sleep(LEASE)
    # one copy again within the lease's bound (never two: _no_overlap); one full run saw none
    # at the instant LEASE after the server's restart, the holder renewing through it
    wait_until(lambda: len(_copies(lab)) == 1, 3 * LEASE, "exactly one copy after the restart")
    _no_overlap(lab)
    report(
        f"singleton: NATS server {victim} killed during a move {holder}->{to}: running on "
        f"{_copies(lab)[0]} {moved:.2f} s after the kill; no overlap"
    )


def test_majority_loss_stops_every_copy_after_its_lease(lab: L.Lab) -> None:
    """Two of three NATS servers killed: no master can hold its leader key, so none
    acknowledges renewals; the holder runs out its lease and stops, and no node starts it.
    Majority back: exactly one copy again."""
    holder = _holder(lab)
    victims = [n for n in lab.net.nodes if n != holder][:2]
    t0 = time.monotonic()
    for v in victims:
        os.kill(lab.pids[f"nats:{v}"], signal.SIGKILL)
    try:
        gone = wait_until(lambda: not _copies(lab), 4 * LEASE + 20, "every copy stopped") - t0
        time.sleep(LEASE)
        assert _copies(lab) == [], f"a copy started without a majority: {_copies(lab)}"
    finally:
        for v in victims:
            lab_bus.start_nats(lab, v)
    back = wait_until(lambda: len(_copies(lab)) == 1, 90, "a copy after the majority returned")
    _no_overlap(lab)
    report(
        f"singleton: NATS majority lost (2 of 3 servers killed): the copy on {holder} stopped "
        f"after {gone:.2f} s, none ran until it returned; one copy {back - t0:.2f} s after the "
        "kill"
    )


def test_lab_stop_of_the_holder_runs_it_elsewhere(lab: L.Lab) -> None:
    """``hactl lab stop`` of the holder (every process of its namespace killed: a node's power
    cut, its links dark): running elsewhere within the lease plus its margin (and the 2 s
    heartbeat loss). Then ``hactl lab start`` boots it: its minion answers again, every VIP
    is on one node (none left behind), and the copy stays where it is (one copy, no overlap)."""
    holder = _holder(lab)
    last_alive = intervals(_log_lines(lab))[-1]
    t0 = time.monotonic()
    subprocess.run(
        [L.HACTL, "lab", "stop", holder, "--dir", str(lab.dir)], check=True, capture_output=True
    )
    node, moved = _elsewhere(lab, holder, 4 * LEASE, t0)
    _no_overlap(lab)
    subprocess.run(
        [L.HACTL, "lab", "start", holder, "--dir", str(lab.dir)], check=True, capture_output=True
    )
    t1 = time.monotonic()
    subprocess.run(
        [L.HACTL, "ping", holder, "--wait", "30"],
        check=True,
        capture_output=True,
        env=lab.cli_env(),
    )
    booted = time.monotonic() - t1
    time.sleep(3.0)
    # no VIP left behind by the dead keepalived: every VIP on exactly one node
    assert all(len(h) == 1 for h in L.holders(lab).values()), L.holders(lab)
    assert _copies(lab) == [node], f"one copy, still on {node}: {_copies(lab)}"
    _no_overlap(lab)
    report(
        f"singleton: lab stop {holder} (its copy {last_alive[1]}): running on {node} after "
        f"{moved:.2f} s (lease {LEASE:g} s + margin); lab start {holder}: its minion answered"
        f" {booted:.2f} s later, the copy stayed on {node}"
    )
