"""Singleton fencing, repeated: no overlap, ever, and how long the service is gone.

A lab of three controllers (root; subnet 10.99.2, HAProxy and keepalived only) runs the lab's
stand-in singleton (lease 5 s, renew 0.5 s, stop 1.5 s). Each fault is repeated ``--runs``
times (default 10) on whichever node holds it then:

- ``partition``: the holder cut off the bridge (carrier up), healed once another node runs it;
- ``sigstop``: the holder's minion SIGSTOPped (the guard alone must stop the copy), SIGCONT
  once another node runs it;
- ``kill``: kill -9 of the copy twice (restart in place, then the threshold moves it).

Measured per run, from the fault: when the old copy was last seen alive (its log, 50 ms
ticks), when a copy ran elsewhere, and any overlap of two copies' alive intervals (must be
none, in every run). The baseline, from the same run's spec: the lease bound
``lease x 1.001 + 0.5 s`` after the last renewal; printed as the ratio of the measured time
elsewhere to that bound. Between runs the lab is brought back to its checked baseline.
Usage: sudo .venv/bin/python benchmarks/singleton.py [--runs N] [--faults partition,sigstop]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import lab_folder
from hactl.lab import bus as lab_bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.baseline import singleton_pidfile, wait_baseline
from hactl.lab.config import SINGLETON
from hactl.lab.singleton_standin import intervals, overlaps
from hactl.wire.singleton import DRIFT, MARGIN

SUBNET = "10.99.2"
LEASE = 5.0
FAULTS = ("partition", "sigstop", "kill")


def _copies(lab: L.Lab) -> list[str]:
    return [n for n in lab.net.nodes if d.pid_from(singleton_pidfile(lab, n))]


def _lines(lab: L.Lab) -> list[str]:
    out: list[str] = []
    for n in lab.net.nodes:
        f = lab.node_dir(n) / f"{SINGLETON}.log"
        if f.exists():
            out += f.read_text().splitlines()
    return out


def _until(pred: Callable[[], object], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"not within {timeout:g} s")


def one(lab: L.Lab, fault: str) -> dict[str, float | str | int]:
    """One fault on the current holder; seconds from the fault."""
    holder = _copies(lab)[0]
    t0 = time.monotonic()
    undo = None
    if fault == "partition":
        lab_bus.set_link(lab, holder, attached=False)
        undo = lambda: lab_bus.set_link(lab, holder, attached=True)  # noqa: E731
    elif fault == "sigstop":
        pid = lab.pids[f"minion:{holder}"]
        os.kill(pid, signal.SIGSTOP)
        undo = lambda: os.kill(pid, signal.SIGCONT)  # noqa: E731
    else:
        pf = singleton_pidfile(lab, holder)
        first = d.pid_from(pf)
        os.kill(first or 0, signal.SIGKILL)
        _until(lambda: d.pid_from(pf) not in (None, first), 10)
        os.kill(d.pid_from(pf) or 0, signal.SIGKILL)
    try:
        t_new = _until(lambda: [n for n in _copies(lab) if n != holder], 60) - t0
    finally:
        if undo is not None:
            undo()
    # the stand-in logs CLOCK_MONOTONIC, the clock time.monotonic() reads: one time line
    old = [iv for iv in intervals(_lines(lab)) if iv[0] == holder and iv[2] <= t0]
    last_old = max((iv[3] for iv in old), default=t0) - t0
    return {"holder": holder, "old_last_alive": round(last_old, 3), "elsewhere": round(t_new, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--faults", default=",".join(FAULTS))
    args = ap.parse_args()
    folder = lab_folder("singleton.py")
    if folder is None:
        return 2
    lab = L.up(
        folder, 3, {"haproxy", "keepalived"}, subnet=SUBNET, prefix="hsg", say=lambda _m: None
    )
    results: dict[str, list[dict[str, float | str | int]]] = {}
    bound = LEASE * (1 + DRIFT) + MARGIN
    try:
        for fault in args.faults.split(","):
            results[fault] = []
            for i in range(args.runs):
                wait_baseline(lab, 120)
                if fault == "kill":
                    time.sleep(21)  # the previous run's failures expire (failure_expiry 20 s)
                r = one(lab, fault)
                r["overlaps"] = len(overlaps(_lines(lab)))
                results[fault].append(r)
                print(f"{fault} {i + 1}/{args.runs}: {r}", file=sys.stderr, flush=True)
        wait_baseline(lab, 120)
    finally:
        L.teardown(lab, say=lambda _m: None)
    summary = {}
    print(
        f"{'fault':<10} {'runs':>4} {'old gone p50/max':>17} {'elsewhere p50/p95/max':>22} "
        f"{'ratio to bound':>15} {'overlaps':>8}"
    )
    for fault, runs in results.items():
        gone = sorted(float(r["old_last_alive"]) for r in runs)
        new = sorted(float(r["elsewhere"]) for r in runs)
        p95 = new[min(len(new) - 1, int(0.95 * len(new)))]
        over = sum(int(r["overlaps"]) for r in runs)
        summary[fault] = {
            "runs": len(runs),
            "old_gone_p50": statistics.median(gone),
            "old_gone_max": gone[-1],
            "elsewhere_p50": statistics.median(new),
            "elsewhere_p95": p95,
            "elsewhere_max": new[-1],
            "ratio_p50_to_bound": statistics.median(new) / bound,
            "overlaps": over,
        }
        print(
            f"{fault:<10} {len(runs):>4} {statistics.median(gone):>8.2f}/{gone[-1]:<8.2f} "
            f"{statistics.median(new):>8.2f}/{p95:.2f}/{new[-1]:<7.2f} "
            f"{statistics.median(new) / bound:>15.2f} {over:>8}"
        )
    print(json.dumps({"bound_s": bound, "faults": summary}))
    return 1 if any(s["overlaps"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
