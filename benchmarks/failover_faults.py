"""The faults benchmarks/failover.py repeats, each one run on a lab, returning its figures.

Every fault waits for its own baseline (the lab healthy, kills of one daemon spaced so the
supervisor's failure threshold is never tripped), injects the fault with a client of the VIP
running, and measures until things are stable again, fail-back included. The runner
(variants, repetitions, the table) is benchmarks/failover.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pymysql

from benchmarks.vip_clients import AmqpLoop, Writer
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.config import site_etc
from hactl.lab.power import power_off, power_on
from tests.lab.helpers import HttpLoop, cut_galera, heal_galera

SUBNET = "10.99.2"


def _wait(what: str, ok: Any, timeout: float, step: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if ok():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


#: the lab's supervision leaves a service stopped after 5 deaths in 60 s (Pacemaker's
#: migration-threshold): kills of one daemon are spaced so that a run never trips it
SPACING = 15.0
_LAST_KILL = [0.0]


def _baseline(lab: L.Lab, vip: str) -> str:
    """Wait until the lab is healthy: HAProxy on every node, one VIP holder; the holder."""
    time.sleep(max(0.0, _LAST_KILL[0] + SPACING - time.monotonic()))
    _wait(
        "HAProxy on every node",
        lambda: all(lab.daemon_pid(n, "haproxy") for n in lab.net.nodes),
        60,
        0.1,
    )
    _wait("one VIP holder", lambda: len(L.holders(lab)[vip]) == 1, 60, 0.1)
    time.sleep(3.0)  # keepalived's script check risen again (rise 2) on a restarted node
    return L.holders(lab)[vip][0]


def _settle(lab: L.Lab, vip: str, holder: str, t0: float, node_back: Any) -> float | None:
    """Poll until ``node_back()`` holds and the VIP has had one holder for 4 s; the time the
    VIP first left ``holder`` (None: it never moved)."""
    moved: float | None = None
    last, since = L.holders(lab)[vip], time.monotonic()
    deadline = t0 + 60
    while time.monotonic() < deadline:
        now = L.holders(lab)[vip]
        t = time.monotonic()
        if moved is None and holder not in now:
            moved = t
        if now != last:
            last, since = now, t
        if len(now) == 1 and t - since > 4.0 and node_back():
            return None if moved is None else moved - t0
        time.sleep(0.01)
    raise TimeoutError("the VIP did not settle within 60 s")


def haproxy_kill(lab: L.Lab, daemon: str = "haproxy") -> dict[str, float]:
    """kill -9 ``daemon`` on the VIP holder; until it is restarted and the VIP is stable 4 s."""
    vip = lab.net.vip(0)
    holder = _baseline(lab, vip)
    pid = lab.daemon_pid(holder, daemon)
    assert pid
    with HttpLoop(vip, connect_timeout=0.1, answer_timeout=0.2) as client:
        time.sleep(1.0)
        t0 = _LAST_KILL[0] = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        moved = _settle(lab, vip, holder, t0, lambda: lab.daemon_pid(holder, daemon))
    gaps = client.gaps(t0 - 0.5)
    return {
        "vip_s": moved if moved is not None else float("nan"),
        "gap_s": max(gaps, default=0.0),
        "gaps": float(len(gaps)),
        "failed": float(client.failures(t0)),
    }


def _sock(lab: L.Lab, node: str) -> Path:
    return lab.node_dir(node) / "mysql/mysqld.sock"


def _galera_ok(lab: L.Lab) -> bool:
    if not all(d.galera_state(_sock(lab, n)) == ("Primary", "Synced") for n in lab.net.nodes):
        return False
    return all(
        d.haproxy_servers(lab.node_dir(h) / "run/haproxy.sock").get(f"galera/{n}") == "UP"
        for h in lab.net.nodes
        for n in lab.net.nodes
    )


def _writer(lab: L.Lab) -> str:
    """The node HAProxy sends writes to: the first UP server in the galera backend's order
    (the pillar's writer, then the backups by id)."""
    holder = L.holders(lab)[lab.net.vip(0)][0]
    st = d.haproxy_servers(lab.node_dir(holder) / "run/haproxy.sock")
    return next(n for n in lab.net.nodes if st.get(f"galera/{n}") == "UP")


def _prepare_writes(lab: L.Lab) -> str:
    """A database and a TCP user for the writer client (once per lab); its password."""
    pw = (site_etc(lab.dir) / "haproxy-stats.pw").read_text().strip()
    s = _sock(lab, _writer(lab))
    for q in (
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.w (id INT PRIMARY KEY)",
        f"CREATE USER IF NOT EXISTS 'bench'@'%' IDENTIFIED BY '{pw}'",
        "GRANT ALL ON bench.* TO 'bench'@'%'",
    ):
        d.galera_sql(s, q)
    return pw


def _writer_fault(lab: L.Lab, kind: str) -> dict[str, float]:
    _wait("Galera Synced and UP everywhere", lambda: _galera_ok(lab), 120, 0.2)
    time.sleep(1.0)
    pw = _prepare_writes(lab)
    _clear_rows(lab)
    victim = _writer(lab)
    pid = lab.daemon_pid(victim, "galera")
    assert pid, f"mariadbd runs on {victim}"
    with Writer(lab.net.vip(0), pw) as w:
        _wait("writes through the VIP", lambda: len(w.confirmed) > 20, 20, 0.05)
        reactor(False)
        t0 = time.monotonic()
        if kind == "crash":
            os.kill(pid, signal.SIGKILL)
        elif kind == "hang":
            os.kill(pid, signal.SIGSTOP)
        else:
            cut_galera(lab, victim)
        try:
            _wait(
                "writes resumed",
                lambda: (
                    any(ok and t > t0 + 0.05 for t, ok in w.samples[-5:]) and _moved(lab, victim)
                ),
                60,
                0.05,
            )
            time.sleep(2.0)
        finally:
            if kind == "hang":
                os.kill(pid, signal.SIGCONT)
            elif kind == "partition":
                heal_galera(lab, victim)
            reactor(True)
        gap = w.gap(t0 - 0.5)
    _wait("Galera healed", lambda: _galera_ok(lab), 120, 0.2)
    # every node, with a causal read (wsrep_sync_wait): a Synced node may still be applying
    # the last write-sets, and a row missing on any node is lost for a client that lands there
    lost = max(sum(1 for i in w.confirmed if i not in _causal_ids(lab, n)) for n in lab.net.nodes)
    return {"write_s": gap, "lost": float(lost), "confirmed": float(len(w.confirmed))}


def _clear_rows(lab: L.Lab, wait: float = 90.0) -> None:
    """Empty the writer's table before a run. A writer that was hung and resumed may still
    hold row locks of a transaction whose client is gone (seen: 1205 on this DELETE 11 s after
    a hang run, the node the writer again); say who holds them, once, and wait it out."""
    deadline, said = time.monotonic() + wait, False
    while True:
        node = _writer(lab)
        try:
            d.galera_sql(_sock(lab, node), "DELETE FROM bench.w", timeout=15)
            return
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in (1205, 1213) or time.monotonic() > deadline:
                raise
            if not said:
                said = True
                rows = d.galera_sql(
                    _sock(lab, node),
                    "SELECT trx_id, trx_state, trx_started, trx_mysql_thread_id,"
                    " trx_rows_locked, trx_query FROM information_schema.innodb_trx",
                )
                print(f"  rows locked on {node} ({exc.args[1]}): {rows}", flush=True)
            time.sleep(1.0)


def _causal_ids(lab: L.Lab, node: str) -> set[int]:
    rows = d.galera_sql(_sock(lab, node), "SELECT id FROM bench.w", causal=True, timeout=30)
    return {int(str(r[0])) for r in rows}


def _moved(lab: L.Lab, victim: str) -> bool:
    """Writes go elsewhere: the victim is not UP in the VIP holder's galera backend."""
    try:
        return _writer(lab) != victim
    except (StopIteration, IndexError, OSError):
        return False


def broker_kill(lab: L.Lab) -> dict[str, float]:
    """kill -9 the RabbitMQ broker on the VIP holder; an AMQP client of the VIP opens a fresh
    connection every 20 ms; until the supervisor restarted it and it is UP everywhere again."""
    vip = lab.net.vip(0)
    holder = _baseline(lab, vip)
    _wait("every broker UP in every HAProxy", lambda: _all_up(lab, "rabbitmq"), 120, 0.2)
    pid = lab.daemon_pid(holder, "rabbitmq")
    assert pid, f"a broker runs on {holder}"
    sock = lab.node_dir(holder) / "run/haproxy.sock"
    with AmqpLoop(vip, connect_timeout=0.1, answer_timeout=0.2) as client:
        time.sleep(1.0)
        t0 = _LAST_KILL[0] = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        out = _wait(
            "the broker out of HAProxy",
            lambda: d.haproxy_servers(sock).get(f"rabbitmq/{holder}") != "UP",
            30,
        )
        back = _wait("the broker UP everywhere", lambda: _all_up(lab, "rabbitmq"), 120, 0.1)
        time.sleep(2.0)
    gaps = client.gaps(t0 - 0.5)
    return {
        "out_s": out - t0,
        "back_s": back - t0,
        "gap_s": max(gaps, default=0.0),
        "gaps": float(len(gaps)),
        "failed": float(client.failures(t0)),
    }


def _all_up(lab: L.Lab, backend: str) -> bool:
    return all(
        d.haproxy_servers(lab.node_dir(h) / "run/haproxy.sock").get(f"{backend}/{n}") == "UP"
        for h in lab.net.nodes
        for n in lab.net.nodes
    )


def node_power_off(lab: L.Lab) -> dict[str, float]:
    """``hactl lab stop`` of the VIP holder (processes killed, links dark), powered on 5 s
    after the VIP moved; until its HAProxy and keepalived run again and the VIP is stable
    4 s (fail-back included)."""
    vip = lab.net.vip(0)
    holder = _baseline(lab, vip)
    if "galera" in lab.components:  # a node whose mariadbd is still rejoining is no baseline
        _wait("Galera Synced and UP everywhere", lambda: _galera_ok(lab), 120, 0.2)
    with HttpLoop(vip, connect_timeout=0.1, answer_timeout=0.2) as client:
        time.sleep(1.0)
        t0 = _LAST_KILL[0] = time.monotonic()
        power_off(lab, holder)
        moved = _wait("the VIP on another node", lambda: set(L.holders(lab)[vip]) - {holder}, 30)
        time.sleep(5.0)
        power_on(lab, holder)
        _settle(
            lab,
            vip,
            holder,
            t0,
            lambda: lab.daemon_pid(holder, "haproxy") and lab.daemon_pid(holder, "keepalived"),
        )
    gaps = client.gaps(t0 - 0.5)
    return {
        "vip_s": moved - t0,
        "gap_s": max(gaps, default=0.0),
        "gaps": float(len(gaps)),
        "failed": float(client.failures(t0)),
    }


def unlimit_rejoins(lab: L.Lab) -> None:
    """The shipped Galera rules rejoin a node at most 3 times in 10 minutes (a node that keeps
    crashing is for a person); a benchmark crashes the same writer on purpose every run, so
    its lab's copy of the rules allows 100, and the master is restarted to load them."""
    rules = lab.dir / "reactors" / "galera.yaml"
    rules.write_text(
        rules.read_text().replace(
            "max_per: {count: 3, window: 10m}", "max_per: {count: 100, window: 10m}"
        )
    )
    L.stop_master(lab)
    L.start_master(lab, "master")


FAULTS: dict[str, Any] = {
    "broker": broker_kill,
    "power-off": node_power_off,
    "haproxy": haproxy_kill,
    "keepalived": lambda lab: haproxy_kill(lab, "keepalived"),
    "writer-crash": lambda lab: _writer_fault(lab, "crash"),
    "writer-hang": lambda lab: _writer_fault(lab, "hang"),
    "writer-partition": lambda lab: _writer_fault(lab, "partition"),
}

#: with ``reactor-stopped`` the master is stopped for the fault and started again after the
#: measurement (what it repairs -- a crashed writer's rejoin -- is not what is measured)
REACTOR: dict[str, Any] = {"off": None, "on": None, "stopped": False}


def reactor(on: bool) -> None:
    """Stop or start the master around a fault (``reactor-stopped``; a no-op otherwise)."""
    fn = REACTOR["on" if on else "off"]
    if fn is not None and REACTOR["stopped"] == on:
        fn()
        REACTOR["stopped"] = not on
