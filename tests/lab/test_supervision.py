"""Supervision (Convergence): the minions restart a dead HAProxy or keepalived by themselves,
on the VIP holder and on a backup; one killed five times in a minute is left stopped and an
alert is stored; a hand start puts it back under supervision; one that cannot start backs off
and is given up; a deleted pid file never makes a second copy. Last, a power-off of the VIP
holder and its boot, and a rolling apply that supervision does not fight."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from hactl.lab import lab as L
from hactl.lab.power import power_off, power_on
from hactl.lab.workload import Workload, prepare
from tests.lab.conftest import report
from tests.lab.helpers import (
    HttpLoop,
    recent_decisions,
    server_status,
    stored_events,
    wait_until,
)
from tests.lab.supervision_support import (
    alerts,
    ask,
    copies,
    given_up,
    kill_and_wait_back,
    log_lines,
    minion_log_events,
    service,
)

LAB_SHARED = True  # on the lab the shared modules share (tests/lab/conftest.py) ...
LAB_SUPERVISE = True  # ... with minion.yaml `supervision` switched on for this module,
# after the other shared modules: its rolling apply leaves rabbitmq.conf changed, which any
# later apply of theirs would roll back (45 s in the fresh-clone run that found it)
LAB_LAST = True


def test_haproxy_killed_on_the_holder_and_a_backup_comes_back(lab: L.Lab) -> None:
    """kill -9 HAProxy on the VIP holder, then on a backup: each started again by its minion."""
    vip = lab.net.vip(0)
    wait_until(lambda: L.holders(lab)[vip], 30, "a VIP holder")
    holder = L.holders(lab)[vip][0]
    backup = next(n for n in lab.net.nodes if n != holder)
    with HttpLoop(vip) as client:
        time.sleep(1.0)
        on_holder = kill_and_wait_back(lab, holder, "haproxy")
        wait_until(lambda: client.ok_since(time.monotonic() - 0.5), 20, "clients served again")
    on_backup = kill_and_wait_back(lab, backup, "haproxy")
    report(
        f"supervision: HAProxy kill -9 on the holder back in {on_holder:.2f} s (client gap "
        f"{client.longest_gap():.2f} s), on a backup back in {on_backup:.2f} s"
    )


def test_keepalived_killed_comes_back(lab: L.Lab) -> None:
    """kill -9 keepalived on a backup: started again; the VIP stays held by exactly one node."""
    vip = lab.net.vip(0)
    holder = L.holders(lab)[vip][0]
    backup = next(n for n in lab.net.nodes if n != holder)
    took = kill_and_wait_back(lab, backup, "keepalived")
    wait_until(lambda: len(L.holders(lab)[vip]) == 1, 20, "one VIP holder")
    report(f"supervision: keepalived kill -9 on a backup back in {took:.2f} s")


def test_killed_five_times_in_a_minute_is_left_stopped_and_alerted(lab: L.Lab) -> None:
    """Five deaths within the window (threshold 5): the fifth is not restarted, an alert is
    stored; a hand start (service.start) puts HAProxy back and under supervision again."""
    vip = lab.net.vip(0)
    holder = L.holders(lab)[vip][0]
    # the other backup: the first one's HAProxy died in an earlier test of this module, and
    # deaths count for the whole window
    node = [n for n in lab.net.nodes if n != holder][-1]
    # deaths of the earlier tests that are still in the window count too, and some may leave
    # it meanwhile: kill until the minion gives up (the threshold is 5), at most 7 times
    for kills in range(1, 8):
        pid = lab.daemon_pid(node, "haproxy")
        assert pid, f"HAProxy runs on {node} before kill {kills}"
        start = len(log_lines(lab, node))
        os.kill(pid, signal.SIGKILL)
        if given_up(lab, node, start):
            break
        wait_until(lambda old=pid: lab.daemon_pid(node, "haproxy") not in (None, old), 20, "back")
        wait_until(lambda: server_status(lab, node), 20, f"HAProxy on {node} answers")
    try:
        wait_until(lambda: any(a.get("node") == node for a in alerts(lab)), 30, "the alert")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{recent_decisions(lab, '2m')}\n{alerts(lab)}") from None
    time.sleep(3.0)  # the minion checks every 0.5 s: it would have started it by now
    assert lab.daemon_pid(node, "haproxy") is None, "a given-up HAProxy stays stopped"
    alert = next(a for a in alerts(lab) if a.get("node") == node)
    assert alert["service"] == "haproxy" and alert["deaths"] == 5, alert
    assert asyncio.run(ask(lab, node, "service.start", {"name": "haproxy"}))
    wait_until(lambda: server_status(lab, node), 20, "HAProxy answers after the hand start")
    log = lab.node_dir(node) / "minion.log"
    wait_until(
        lambda: "service_supervised_again" in log.read_text(errors="replace"),
        10,
        "the minion saw the hand start",
    )  # its next check, within 0.5 s
    t0 = time.monotonic()
    wait_until(  # the alert's lifecycle: the fault cleared, so it is resolved
        lambda: any(a.get("node") == node and a.get("resolved") is True for a in alerts(lab)),
        20,
        "the service-given-up alert resolved",
    )
    resolved = time.monotonic() - t0
    took = kill_and_wait_back(lab, node, "haproxy")  # supervised again
    report(
        f"supervision: given up after 5 deaths, alert stored; after a hand start the alert "
        f"resolved within {resolved:.2f} s, and it is back {took:.2f} s after a kill"
    )


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_api_standin_and_broker_killed_come_back(lab: L.Lab) -> None:
    """kill -9 of ctl2's API stand-in and of its RabbitMQ broker (foreground programs, started
    through the lab's launcher like a service manager would): each started again by the
    minion; the stand-in answers and the broker is UP in every HAProxy again."""
    node, addr = "ctl2", lab.net.address("ctl2")
    api = kill_and_wait_back(lab, node, "api")
    t0 = time.monotonic()
    api_ok = wait_until(lambda: _answers(addr, 8774), 20, "the stand-in answers") - t0 + api
    wait_until(
        lambda: all(server_status(lab, h).get("rabbitmq/ctl2") == "UP" for h in lab.net.nodes),
        60,
        "rabbitmq/ctl2 UP everywhere before the kill",
    )
    broker = kill_and_wait_back(lab, node, "rabbitmq", timeout=60)
    t1 = time.monotonic()
    up = wait_until(
        lambda: all(server_status(lab, h).get("rabbitmq/ctl2") == "UP" for h in lab.net.nodes),
        120,
        "rabbitmq/ctl2 UP everywhere again",
    )
    report(
        f"supervision: API stand-in kill -9 on {node} started again in {api:.2f} s, answering "
        f"after {api_ok:.2f} s; RabbitMQ broker kill -9 started again in {broker:.2f} s, UP in "
        f"every HAProxy {up - t1 + broker:.1f} s after the kill"
    )


def test_a_deleted_pid_file_never_makes_a_second_copy(lab: L.Lab) -> None:
    """Issue 26, one copy always: for HAProxy, keepalived and the API stand-in on a backup
    node, the pid file deleted while the daemon runs -> no death, no start, one copy; then
    kill -9 with the pid file still gone -> started again once, one copy, no failed start."""
    vip = lab.net.vip(0)
    holder = L.holders(lab)[vip][0]
    node = next(n for n in lab.net.nodes if n != holder)
    figures = []
    for name in ("haproxy", "keepalived", "api", "rabbitmq"):
        svc = service(lab, node, name)
        assert svc.process and svc.pidfile, (name, svc)
        wait_until(lambda s=svc: len(copies(lab, s, node)) == 1, 60, f"one {name} on {node}")
        (pid,) = copies(lab, svc, node)
        seen = len(minion_log_events(lab, node, name))
        Path(svc.pidfile).unlink()
        time.sleep(3.0)  # six looks of the supervisor
        assert copies(lab, svc, node) == [pid], f"{name}: a second copy without its pid file"
        assert minion_log_events(lab, node, name)[seen:] == [], "its supervisor acted"
        assert not Path(svc.pidfile).exists() or svc.pid() == pid
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        back = wait_until(  # the minion started it (the old copy's children may linger)
            lambda s=svc, n=name, k=seen: (
                "service_restarted" in minion_log_events(lab, node, n)[k:]
                and len(copies(lab, s, node)) == 1
            ),
            60,
            f"{name} started again",
        )
        time.sleep(2.0)
        assert len(copies(lab, svc, node)) == 1, f"{name}: {copies(lab, svc, node)} copies"
        said = minion_log_events(lab, node, name)[seen:]
        assert said.count("service_restarted") == 1, said
        assert "service_start_not_seen" not in said, said
        figures.append(f"{name} back in {back - t0:.2f} s")
    report(
        f"supervision, pid file deleted on {node}: no second copy while each ran; kill -9 "
        f"without it: {', '.join(figures)}, one copy each, one start each"
    )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_daemon_that_cannot_start_backs_off_and_is_given_up(lab: L.Lab) -> None:
    """Issue 26: HAProxy killed on a backup while its configuration no longer parses (an
    edit gone wrong): each start fails, the next waits longer (backoff), the threshold's
    failure gives it up with one alert; the minion's CPU over it is stated. Fixed and cleaned
    up (`supervision.cleanup`), it is started again and the alert resolves."""
    holder = L.holders(lab)[lab.net.vip(0)][0]
    node = next(n for n in lab.net.nodes if n != holder)
    assert asyncio.run(ask(lab, node, "supervision.cleanup", {"service": "haproxy"}))
    cfg = lab.node_dir(node) / "etc/haproxy.cfg"
    good = cfg.read_text()
    minion = lab.pids[f"minion:{node}"]
    start = len(log_lines(lab, node))
    since = datetime.now(UTC)
    try:
        cfg.write_text(good + "\nthis-is-not-a-keyword\n")
        cpu0, t0 = _cpu_s(minion), time.monotonic()
        os.kill(lab.daemon_pid(node, "haproxy") or 0, signal.SIGKILL)
        gave_up = wait_until(lambda: given_up(lab, node, start, wait=0.1), 90, "given up", 0.2)
        cpu = _cpu_s(minion) - cpu0

        def firing() -> list[dict[str, object]]:  # this node's, stored since this test began
            minutes = (datetime.now(UTC) - since).total_seconds() / 60 + 0.02
            return [
                a for a in alerts(lab, minutes) if a.get("node") == node and not a.get("resolved")
            ]

        wait_until(lambda: bool(firing()), 30, "the given-up alert")
        # a second alert would be stored by now, and six looks of the supervisor have passed:
        # nothing more is tried (one wait for both)
        time.sleep(max(2.0, 3.0 - (time.monotonic() - gave_up)))
        fired = firing()
        said = minion_log_events(lab, node, "haproxy")
        recent = [json.loads(x) for x in log_lines(lab, node)[start:] if '"haproxy"' in x]
        tries = [r for r in recent if r.get("event") == "service_restart_failed"]
        assert lab.daemon_pid(node, "haproxy") is None, "a start that cannot work ran anyway"
        assert tries and all(r.get("event") != "service_restarted" for r in recent), said
    finally:
        cfg.write_text(good)
    assert asyncio.run(ask(lab, node, "supervision.cleanup", {"service": "haproxy"}))
    back = wait_until(lambda: bool(server_status(lab, node)), 20, "HAProxy started again")
    wait_until(
        lambda: any(a.get("node") == node and a.get("resolved") is True for a in alerts(lab)),
        20,
        "the alert resolved",
    )
    stamps = [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in tries]
    gaps = [round((b - a).total_seconds(), 1) for a, b in itertools.pairwise(stamps)]
    assert gaps == sorted(gaps), f"the starts do not back off: {gaps}"
    assert len(fired) == 1, fired
    took = gave_up - t0
    report(
        f"supervision: HAProxy on {node} that cannot start (its config no longer parses): "
        f"{len(tries)} failed starts {gaps} s apart, given up {took:.1f} s after the kill, one "
        f"alert; the minion used {cpu:.2f} s of CPU over those {took:.1f} s "
        f"({100 * cpu / took:.1f} % of a core); fixed and cleaned up: started again "
        f"{back - gave_up:.1f} s later, the alert resolved (since {since:%H:%M:%S})"
    )


def test_power_off_of_the_vip_holder_then_boot(lab: L.Lab) -> None:
    """The VIP holder powered off (every process killed, its links dark): the VIP moves to a
    live node and stays there -- the reconciler never makes the new holder yield to the dead
    node's last report (benchmarks/failover.py caught that: the VIP gone 10-11 s). Powered on,
    the node boots (minion, HAProxy, keepalived) and every VIP is on one node. The module's
    last test: its Galera node is left to rejoin."""
    vip = lab.net.vip(0)
    wait_until(lambda: len(L.holders(lab)[vip]) == 1, 30, "one VIP holder")
    holder = L.holders(lab)[vip][0]
    since = datetime.now(UTC)
    with HttpLoop(vip) as client:
        time.sleep(1.0)
        t0 = time.monotonic()
        power_off(lab, holder)
        t_moved = wait_until(
            lambda: set(L.holders(lab)[vip]) - {holder}, 10, f"{vip} on a live node"
        )
        new = next(iter(set(L.holders(lab)[vip]) - {holder}))
        time.sleep(8.0)  # past the split debounce, a heartbeat and the lost verdict
        assert new in L.holders(lab)[vip], f"{new} kept {vip}: {L.holders(lab)}"
        yields = [
            e.data
            for e in asyncio.run(stored_events(lab, "hactl/reactor/reconcile/done", since))
            if e.data.get("to") == "yield"
        ]
        assert yields == [], f"a yield to a dead holder's last report: {yields}"
        power_on(lab, holder)
        t_on = time.monotonic()
        wait_until(
            lambda: lab.daemon_pid(holder, "haproxy") and lab.daemon_pid(holder, "keepalived"),
            30,
            f"HAProxy and keepalived booted on {holder}",
        )
        t_back = wait_until(
            lambda: all(len(h) == 1 for h in L.holders(lab).values()), 20, "every VIP on one node"
        )
    report(
        f"power-off of the VIP holder {holder}: {vip} on {new} after {t_moved - t0:.2f} s, no"
        f" yield; booted: every VIP on one node {t_back - t_on:.2f} s after power-on; client"
        f" GET every 20 ms: {client.failures()} failed, longest gap {client.longest_gap():.2f} s"
    )


def test_a_rolling_apply_on_a_supervised_lab_is_not_fought(lab: L.Lab) -> None:
    """Issue 26: a rabbitmq.conf change rolled by a plain `hactl apply` on a supervised lab.
    First behind a gate that never holds (`--gate false`): ctl1's broker is restarted and the
    roll stops there, and says so; then the same change without it: the two brokers left are
    restarted one at a time behind the gate (ctl1, already changed, is not restarted again).
    Supervision of each broker suspended for its restart and resumed after it (the minion's
    log and the supervisor beacon say so), and not one restart by the supervisor during either
    apply; oslo.messaging RPC through it (the rendered client settings) kept working and ran no
    call twice (issue 24; its failed calls are reported); clients publishing with confirms
    through the VIP lost no message; each broker was drained (its pre_stop) before it
    stopped."""
    from tests.lab.test_rabbit import Publishers, _apply, _broker, _roll_pillar, _start_times

    wait_until(lambda: all(_broker(lab, n) == {"UP"} for n in lab.net.nodes), 120, "brokers UP")
    seen = {n: len(minion_log_events(lab, n, "rabbitmq")) for n in lab.net.nodes}
    before = _start_times(lab)
    since = datetime.now(UTC)
    change = str(_roll_pillar(lab, "info"))
    # under OpenStack's own RPC client (issue 24): oslo.messaging with hactl's settings
    # and clients publishing with confirms through the VIP: not one confirmed message lost
    with Workload(*prepare(lab)) as work, Publishers(lab) as publishers:
        time.sleep(2.0)
        wall, t0 = time.time(), time.monotonic()
        stuck = _apply(lab, "--pillar", change, "--gate", "false", "--wait", "8s")
        assert stuck.returncode != 0
        assert "roll stopped after batch 1 (ctl1)" in stuck.stdout, stuck.stdout[-2000:]
        assert "batch 2/3" not in stuck.stdout
        first = _start_times(lab)
        assert [n for n in lab.net.nodes if first[n] > before[n]] == ["ctl1"], (before, first)
        wait_until(lambda: _broker(lab, "ctl1") == {"UP"}, 90, "ctl1's broker UP again")
        res = _apply(lab, "--pillar", change, "--wait", "120s")
        took = time.monotonic() - t0
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        wait_until(lambda: all(_broker(lab, n) == {"UP"} for n in lab.net.nodes), 120, "all UP")
        time.sleep(3.0)
    confirmed, lost = publishers.lost()
    assert confirmed and not lost, f"{lost} of {confirmed} confirmed messages lost"
    rpc = work.figures(wall - 0.5)["rpc"]
    # reported, not asserted beyond "worked throughout": one run of two saw 1 call never run
    # and 1 run but reported failed; one CI run saw 1 call of 2,116 run twice. A broker that
    # stops -- however gracefully -- discards the frames that reach it after its
    # connection.close, an RPC server's ack among them, and the request is delivered again
    # (oslo.messaging acks before it dispatches; AMQP is at-least-once): what a roll costs a
    # client is reported below; issue 24 keeps it open
    assert rpc["calls"] > 50, rpc
    after = _start_times(lab)
    assert all(after[n] > before[n] for n in lab.net.nodes), "every broker restarted"
    assert after["ctl1"] == first["ctl1"], "ctl1, changed by the stopped roll, left alone"
    assert "batch 1: no service started" in res.stdout, res.stdout[-3000:]  # ctl1: done
    assert res.stdout.index("batch 2 healthy") < res.stdout.index("batch 3/3")
    for n in lab.net.nodes:
        events = minion_log_events(lab, n, "rabbitmq")[seen[n] :]
        assert "supervision_suspended" in events and "supervision_resumed" in events, (n, events)
        # drained before it went (services.rabbitmq.pre_stop: rabbitmq-upgrade drain)
        assert "service_pre_stop" in events, (n, events)
        fought = [e for e in events if e in ("service_died", "service_restarted")]
        assert not fought, f"{n}: the supervisor fought the roll: {events}"
    trail = asyncio.run(stored_events(lab, "hactl/beacon/*/supervisor", since))
    suspended = {
        e.minion
        for e in trail
        if any(
            c.get("item") == "rabbitmq" and c.get("field") == "suspended" and c.get("value")
            for c in e.data.get("changes", [])
            if isinstance(c, dict)
        )
    }
    assert suspended == set(lab.net.nodes), suspended
    report(
        "rolling apply on a supervised lab: behind a gate that never holds ctl1's broker "
        "restarted and the roll stopped there; then the other 2 brokers one at a time: 3 "
        f"restarted in {took:.1f} s; "
        f"supervision suspended and resumed per broker, 0 supervisor restarts; {confirmed} "
        "confirmed messages through the VIP, 0 lost; oslo.messaging "
        f"RPC through it: {rpc['calls']} calls, {rpc['failed']} failed, "
        f"{rpc['executed_twice']} run twice "
        f"({rpc['executed_but_failed']} run but reported failed), longest gap "
        f"{rpc['longest_gap']:.2f} s"
    )
