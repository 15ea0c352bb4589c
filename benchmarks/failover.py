"""Failover as a client of the VIP feels it: distributions over repeated faults, against
baselines measured in the same run.

For each variant a lab of three controllers is built (root; subnet 10.99.2, never two at
once) with minions that restart dead daemons (supervision), and each fault is repeated
``--runs`` times (default 10; ``--writer-runs`` for the writer faults, ~40 s each). A client
opens a fresh TCP connection to the VIP every 20 ms (100 ms connect timeout, 200 ms for the
answer) from before the fault until things are stable again -- fail-back included -- and
records every gap between two answered requests.

Variants (same faults, same machine, same run):
- ``hactl``: the shipped setup -- the minion learns of HAProxy's death from a pidfd and
  flags it in a file keepalived tracks (FAULT at once), the health agent, the reconciler;
- ``reactor-stopped``: the same with the master stopped for each fault (started again after
  the measurement, to repair what only it repairs): what the minions and daemons do alone;
- ``script``: the minions' fast path off (minion.yaml ``vrrp.watch: []``): keepalived's own
  script check (interval 1 s, fall 2) is all that moves the VIP -- the daemons alone;
- ``galera-defaults``: Galera's own group-communication timeouts (pillar ``galera.profile:
  default``, evs.suspect_timeout 5 s) instead of the shipped LAN profile (1 s).
keepalived's ``vrrp_track_process`` has no variant: it works only for a keepalived started
from the initial network namespace with ``-s <ns>`` (LAB-NOTES.md), and the lab's minions
start keepalived inside the node's namespace; LAB-NOTES' figure (VIP moved 0.23-0.24 s,
client gap 0.625 s) is the reference.

Faults: ``haproxy`` (kill -9 of HAProxy on the VIP holder; the minion's supervisor starts it
again, and the VIP may move back); ``keepalived`` (kill -9 of keepalived on the VIP holder:
its VIP stays behind until the supervisor starts keepalived again, which drops it);
``writer-crash`` (kill -9 of mariadbd on the node HAProxy writes to), ``writer-hang``
(SIGSTOP of it, SIGCONT after), ``writer-partition`` (its Galera traffic dropped, healed
after): a client commits a numbered row every 20 ms through the VIP (reconnecting on any
error); measured: the longest time between two commits, and committed rows missing
afterwards (must be 0); ``broker`` (kill -9 of the RabbitMQ broker on the VIP holder; an AMQP
client expects a broker's Connection.Start on a fresh connection every 20 ms; measured: when
HAProxy took it out, when it was back UP everywhere, the client's gaps); ``power-off`` (the
VIP holder powered off -- every process killed, its links dark -- and on again 5 s after the
VIP moved; fail-back included). ``script`` runs ``haproxy`` only, ``galera-defaults`` the
writer faults only.

Printed: one table (p50 / p95 / max of the time until the VIP is on another node -- when it
moved at all: a supervisor may restart HAProxy before keepalived's check notices -- and of the
longest client gap, failed requests per run) and one JSON line.
Usage: sudo .venv/bin/python benchmarks/failover.py [--runs N] [--writer-runs N]
[--variants hactl,reactor-stopped,script,galera-defaults] [--faults haproxy,...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


import pymysql

from benchmarks.vip_clients import AmqpLoop, Writer
from hactl.lab import daemons as d
from hactl.lab import lab as L
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
    pw = (lab.dir / "stats.pw").read_text().strip()
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
    d.galera_sql(_sock(lab, _writer(lab)), "DELETE FROM bench.w")
    victim = _writer(lab)
    pid = lab.daemon_pid(victim, "galera")
    assert pid, f"mariadbd runs on {victim}"
    with Writer(lab.net.vip(0), pw) as w:
        _wait("writes through the VIP", lambda: len(w.confirmed) > 20, 20, 0.05)
        _reactor(False)
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
            _reactor(True)
        gap = w.gap(t0 - 0.5)
    _wait("Galera healed", lambda: _galera_ok(lab), 120, 0.2)
    # every node, with a causal read (wsrep_sync_wait): a Synced node may still be applying
    # the last write-sets, and a row missing on any node is lost for a client that lands there
    lost = max(sum(1 for i in w.confirmed if i not in _causal_ids(lab, n)) for n in lab.net.nodes)
    return {"write_s": gap, "lost": float(lost), "confirmed": float(len(w.confirmed))}


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


def _unlimit_rejoins(lab: L.Lab) -> None:
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
#: what each variant changes, and which faults it measures
VARIANTS: dict[str, dict[str, Any]] = {
    "hactl": {"fast_path": True, "galera_profile": "lan"},
    "reactor-stopped": {"fast_path": True, "galera_profile": "lan"},
    "script": {"fast_path": False, "galera_profile": "lan"},
    "galera-defaults": {"fast_path": True, "galera_profile": "default"},
}
#: the faults each baseline measures (``hactl`` and ``reactor-stopped``: every fault)
BASELINE_FAULTS: dict[str, tuple[str, ...]] = {
    "script": ("haproxy",),
    "galera-defaults": ("writer-crash", "writer-hang", "writer-partition"),
}
#: with ``reactor-stopped`` the master is stopped for the fault and started again after the
#: measurement (what it repairs -- a crashed writer's rejoin -- is not what is measured)
_REACTOR: dict[str, Any] = {"off": None, "on": None, "stopped": False}


def _reactor(on: bool) -> None:
    fn = _REACTOR["on" if on else "off"]
    if fn is not None and _REACTOR["stopped"] == on:
        fn()
        _REACTOR["stopped"] = not on


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument(
        "--writer-runs", type=int, default=10, help="runs of each writer fault (each ~40 s)"
    )
    ap.add_argument(
        "--baseline-runs",
        default="",
        help="RUNS,WRITER_RUNS for the baseline variants (default: the same as hactl's)",
    )
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument(
        "--hactl-profile",
        default="lan",
        help="the hactl variant's Galera profile: lan, or lan:KEY=VALUE,... to try options",
    )
    args = ap.parse_args()
    VARIANTS["hactl"]["galera_profile"] = args.hactl_profile
    if os.geteuid() != 0:
        print("failover.py: needs root (a lab in network namespaces)", file=sys.stderr)
        return 2
    faults = args.faults.split(",")
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for variant in args.variants.split(","):
        # the script-check baseline is about HAProxy; Galera's defaults about the writer
        mine = [f for f in faults if f in BASELINE_FAULTS.get(variant, FAULTS)]
        if not mine:
            continue
        comps = {"haproxy", "keepalived"}
        comps |= {"galera"} if any(f.startswith("writer-") for f in mine) else set()
        comps |= {"rabbitmq"} if "broker" in mine else set()
        # a fresh folder the lab creates itself (0755): mysqld must be able to traverse it
        folder = Path(tempfile.mkdtemp(prefix=f"hactl-failover-{variant}-"))
        folder.rmdir()
        lab = L.up(
            folder,
            3,
            comps,
            subnet=SUBNET,
            prefix="hfo",
            say=lambda _m: None,
            supervise=True,
            **VARIANTS[variant],
        )
        try:
            if "galera" in comps:
                _unlimit_rejoins(lab)
            stopped = variant == "reactor-stopped"
            _REACTOR["off"] = (lambda lab=lab: L.stop_master(lab)) if stopped else None
            _REACTOR["on"] = (lambda lab=lab: L.start_master(lab, "master")) if stopped else None
            _REACTOR["stopped"] = False
            for fault in mine:
                rows = results.setdefault(fault, {}).setdefault(variant, {})
                runs = args.writer_runs if fault.startswith("writer-") else args.runs
                if variant != "hactl" and args.baseline_runs:
                    plain, writes = (int(x) for x in args.baseline_runs.split(","))
                    runs = writes if fault.startswith("writer-") else plain
                failures = 0
                for i in range(runs):
                    if not fault.startswith("writer-"):
                        _reactor(False)  # the writer faults stop it once their baseline holds
                    try:
                        got = FAULTS[fault](lab)
                    except (TimeoutError, AssertionError, OSError, pymysql.Error) as exc:
                        _reactor(True)
                        failures += 1  # counted and shown, never averaged away
                        rows.setdefault("errors", []).append(1.0)
                        print(f"{fault} {variant} run {i + 1}/{runs}: FAILED {exc}", flush=True)
                        if failures >= 2:
                            break
                        continue
                    _reactor(True)
                    for k, v in got.items():
                        rows.setdefault(k, []).append(v)
                    print(
                        f"{fault} {variant} run {i + 1}/{runs}: "
                        + " ".join(f"{k}={v:.3f}" for k, v in got.items()),
                        flush=True,
                    )
        finally:
            L.teardown(lab, say=lambda _m: None)
    print(f"\n{'fault':16} {'variant':15} {'metric':8} {'p50':>7} {'p95':>7} {'max':>7}")
    summary: dict[str, Any] = {
        "runs": args.runs,
        "writer_runs": args.writer_runs,
        "baseline_runs": args.baseline_runs or f"{args.runs},{args.writer_runs}",
        "results": {},
    }
    for fault, variants in results.items():
        for variant, rows in variants.items():
            for metric, raw in rows.items():
                vals = [v for v in raw if v == v]  # NaN: the VIP did not move
                if metric == "errors":
                    summary["results"].setdefault(fault, {}).setdefault(variant, {})[
                        "failed_runs"
                    ] = len(raw)
                    print(f"{fault:16} {variant:15} FAILED RUNS: {len(raw)}")
                    continue
                if not vals or metric in ("gaps", "confirmed"):
                    continue
                p50, p95, top = _pct(vals, 50), _pct(vals, 95), max(vals)
                print(f"{fault:16} {variant:15} {metric:8} {p50:7.3f} {p95:7.3f} {top:7.3f}")
                summary["results"].setdefault(fault, {}).setdefault(variant, {})[metric] = {
                    "p50": round(p50, 3),
                    "p95": round(p95, 3),
                    "max": round(top, 3),
                    "n": len(vals),
                }
    for fault, variants in summary["results"].items():
        if any("lost" in v for v in variants.values()):
            total = sum(int(sum(results[fault][v].get("lost", []))) for v in variants)
            summary.setdefault("rows_lost", {})[fault] = total
    base = summary["results"].get("haproxy", {})
    if "hactl" in base and "script" in base:
        ratio = base["hactl"]["gap_s"]["p95"] / max(base["script"]["gap_s"]["p95"], 1e-9)
        summary["haproxy_gap_p95_ratio_to_script"] = round(ratio, 3)
        print(f"\nhaproxy kill: p95 longest gap hactl / script-check baseline = {ratio:.2f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
