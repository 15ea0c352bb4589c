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

With ``--clients`` every run also carries OpenStack's own clients (``hactl.lab.workload``:
an oslo.messaging RPC server and four callers, an oslo.db writer, configured by the file the
``clients`` state renders) from before the fault to its end; their figures come first in the
table (``rpc_gap_s``, ``rpc_failed``, ``rpc_run_failed``: run but reported failed,
``rpc_twice``, ``db_gap_s``, ``db_failed``: after oslo.db's retries, ``db_lost``; Keystone
through keystoneauth1, a token issued on each node and validated through the VIP:
``ks_gap_s``, ``ks_failed``, ``ks_val_failed``): a probe's figure is the second column, never
the headline.

Printed: one table (p50 / p95 / max of the time until the VIP is on another node -- when it
moved at all: a supervisor may restart HAProxy before keepalived's check notices -- and of the
longest client gap, failed requests per run) and one JSON line. A variant whose lab fails
part way (a master that will not stop, a baseline that never returns) is said ABORTED with the
reason; its runs so far are still summarized (``aborted`` in the JSON) and the exit code is 1.
Usage: sudo .venv/bin/python benchmarks/failover.py [--runs N] [--writer-runs N] [--clients]
[--variants hactl,reactor-stopped,script,galera-defaults] [--faults haproxy,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


import pymysql

from benchmarks.failover_faults import FAULTS, REACTOR, SUBNET, reactor, unlimit_rejoins
from hactl.lab import lab as L
from hactl.lab.net import LabError
from hactl.lab.workload import Workload, keystone_options, prepare

#: the real clients' figures (``--clients``), printed before the probes' (the headline)
CLIENT_METRICS = {
    ("rpc", "longest_gap"): "rpc_gap_s",
    ("rpc", "failed"): "rpc_failed",
    ("rpc", "executed_but_failed"): "rpc_run_failed",
    ("rpc", "executed_twice"): "rpc_twice",
    ("db", "longest_gap"): "db_gap_s",
    ("db", "failed"): "db_failed",
    ("db", "rows_lost"): "db_lost",
    ("keystone", "longest_gap"): "ks_gap_s",
    ("keystone", "failed"): "ks_failed",
    ("keystone", "validation_failed"): "ks_val_failed",
}


def _with_clients(lab: L.Lab, fault: Any, keep: Path | None = None) -> dict[str, float]:
    """One fault run under the real clients (oslo.messaging RPC and an oslo.db writer with
    the settings hactl renders); their figures of the run's window, then the probes'.
    ``keep``: a path prefix for the run's workload log, samples and figures (why a run's gap
    was long: oslo.messaging's reconnects are in the log, timed)."""
    with Workload(*prepare(lab), **keystone_options(lab)) as work:
        since = time.time()
        got = fault(lab)
    figures = work.figures(since)
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.with_suffix(".log").write_text(work.read_log())
        keep.with_suffix(".json").write_text(
            json.dumps({"since": since, "figures": figures, "probe": got, "samples": work.samples})
        )
    out = {
        name: float(figures[kind][key])
        for (kind, key), name in CLIENT_METRICS.items()
        if kind in figures
    }
    return {**out, **got}


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
        "--clients",
        action="store_true",
        help="run oslo.messaging and oslo.db (hactl.lab.workload) through every fault; their "
        "figures first (the lab then always has Galera and RabbitMQ)",
    )
    ap.add_argument(
        "--keep",
        type=Path,
        help="with --clients: a folder for each run's workload log, samples and figures",
    )
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
    #: a variant whose lab failed part way (a master that would not stop): its runs so far
    #: are kept and summarized, the reason printed, the other variants still run
    aborted: dict[str, str] = {}
    for variant in args.variants.split(","):
        # the script-check baseline is about HAProxy; Galera's defaults about the writer
        mine = [f for f in faults if f in BASELINE_FAULTS.get(variant, FAULTS)]
        if not mine:
            continue
        comps = {"haproxy", "keepalived"}
        comps |= {"galera"} if any(f.startswith("writer-") for f in mine) else set()
        comps |= {"rabbitmq"} if "broker" in mine else set()
        comps |= {"galera", "rabbitmq", "keystone"} if args.clients else set()
        # a fresh folder the lab creates itself (0755): mysqld must be able to traverse it
        folder = Path(tempfile.mkdtemp(prefix=f"hactl-failover-{variant}-"))
        folder.rmdir()
        try:
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
        except LabError as exc:  # L.up tears down what it built before raising
            aborted[variant] = exc.detail.splitlines()[0]
            print(f"{variant}: ABORTED, no lab: {aborted[variant]}", flush=True)
            continue
        try:
            if "galera" in comps:
                unlimit_rejoins(lab)
            stopped = variant == "reactor-stopped"
            REACTOR["off"] = (lambda lab=lab: L.stop_master(lab)) if stopped else None
            REACTOR["on"] = (lambda lab=lab: L.start_master(lab, "master")) if stopped else None
            REACTOR["stopped"] = False
            for fault in mine:
                rows = results.setdefault(fault, {}).setdefault(variant, {})
                runs = args.writer_runs if fault.startswith("writer-") else args.runs
                if variant != "hactl" and args.baseline_runs:
                    plain, writes = (int(x) for x in args.baseline_runs.split(","))
                    runs = writes if fault.startswith("writer-") else plain
                failures = 0
                for i in range(runs):
                    if not fault.startswith("writer-"):
                        reactor(False)  # the writer faults stop it once their baseline holds
                    try:
                        got = (
                            _with_clients(
                                lab,
                                FAULTS[fault],
                                args.keep / f"{fault}-{variant}-{i + 1}" if args.keep else None,
                            )
                            if args.clients
                            else FAULTS[fault](lab)
                        )
                    except (TimeoutError, AssertionError, OSError, pymysql.Error) as exc:
                        reactor(True)
                        failures += 1  # counted and shown, never averaged away
                        rows.setdefault("errors", []).append(1.0)
                        print(f"{fault} {variant} run {i + 1}/{runs}: FAILED {exc}", flush=True)
                        if failures >= 2:
                            break
                        continue
                    reactor(True)
                    for k, v in got.items():
                        rows.setdefault(k, []).append(v)
                    print(
                        f"{fault} {variant} run {i + 1}/{runs}: "
                        + " ".join(f"{k}={v:.3f}" for k, v in got.items()),
                        flush=True,
                    )
        except LabError as exc:
            aborted[variant] = exc.detail.splitlines()[0]
            print(f"{variant}: ABORTED, runs so far kept: {aborted[variant]}", flush=True)
        finally:
            L.teardown(lab, say=lambda _m: None)
    print(f"\n{'fault':16} {'variant':15} {'metric':8} {'p50':>7} {'p95':>7} {'max':>7}")
    summary: dict[str, Any] = {
        "runs": args.runs,
        "writer_runs": args.writer_runs,
        "baseline_runs": args.baseline_runs or f"{args.runs},{args.writer_runs}",
        "results": {},
    }
    if aborted:
        summary["aborted"] = aborted
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
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
