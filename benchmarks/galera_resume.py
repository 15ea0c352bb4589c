"""Galera's recovery with the master killed at each step, repeated (issue 13).

A full lab (root; subnet 10.99.2) has every mariadbd killed -9 after committed writes, then
the master killed -9 right after the recovery's ``positions``, right after its ``bootstrap``,
or during the first ``rejoin``, and a new master started (tests/lab/test_galera_resume.py's
scenario; CI runs the ``bootstrap`` case once). Each case ``--runs`` times (default 3); every
run checks 3 Synced, every committed row on every node and exactly one bootstrap. Printed per
case: seconds from the crash to 3 Synced (p50/max), and the ratio of its p50 to the same lab's
own recovery of the same crash with the master left alone (the baseline, run last).
Usage: sudo .venv/bin/python benchmarks/galera_resume.py [--runs N] [--cases positions,rejoin]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import lab_folder
from hactl.lab import lab as L
from hactl.lab.baseline import wait_baseline
from tests.lab.helpers import wait_until
from tests.lab.test_galera_resume import STEPS, _all_synced, line, prepare, resume_once

SUBNET = "10.99.2"


def _baseline(lab: L.Lab) -> float:
    """Every mariadbd killed -9, the master left alone: seconds to 3 Synced."""
    wait_until(lambda: _all_synced(lab), 120, "3 Synced before the crash", step=0.5)
    pids = [lab.daemon_pid(n, "galera") for n in lab.net.nodes]
    t0 = time.monotonic()
    for pid in pids:
        if pid:
            os.kill(pid, signal.SIGKILL)
    return wait_until(lambda: _all_synced(lab), 180, "3 Synced (master alone)", 0.5) - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default=",".join(STEPS))
    ap.add_argument("--json", action="store_true", help="every run's figures, after the table")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in STEPS]
    if unknown:
        print(f"galera_resume.py: unknown case(s) {unknown}; known: {list(STEPS)}", file=sys.stderr)
        return 2
    folder = lab_folder("galera_resume.py")
    if folder is None:
        return 2
    lab = L.up(folder, 3, set(L.COMPONENTS), subnet=SUBNET, prefix="hgr", say=lambda _m: None)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        written = prepare(lab)
        for case in cases:
            for i in range(args.runs):
                wait_baseline(lab, 240)
                f = resume_once(lab, case, written)
                written = f["rows"]
                runs.setdefault(case, []).append(f)
                print(f"{case} {i + 1}: {line(f)}", file=sys.stderr, flush=True)
        # the baseline last: its own recovery would put the first case inside the recovery
        # rule's cooldown
        wait_baseline(lab, 240)
        base = _baseline(lab)
        print(f"baseline (master alone): 3 Synced {base:.1f} s after the crash", file=sys.stderr)
        wait_baseline(lab, 240)
    finally:
        L.teardown(lab, say=lambda _m: None)
    print(f"{'case':<10} {'runs':>4} {'3 Synced p50/max':>17} {'ratio':>6} {'baseline':>9}")
    for case, rs in runs.items():
        done = sorted(r["synced_s"] for r in rs)
        p50 = statistics.median(done)
        print(
            f"{case:<10} {len(rs):>4} {p50:>8.1f}/{done[-1]:<8.1f} {p50 / base:>6.2f} {base:>9.1f}"
        )
    if args.json:
        print(json.dumps({"baseline_s": base, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
