"""Silence of the VIP holder, repeated (issue 26 must-show 0): nothing healthy taken out.

A full lab (root; subnet 10.99.2: HAProxy, keepalived, Galera, RabbitMQ, the master) has the
internal VIP's holder cut off the bridge (carrier up) for each of ``--seconds`` (default 30
and 60), healed, with and without the master restarted right after the heal, ``--runs`` times
each (default 3). Measured per run (tests/lab/test_silence.py's scenario): first what
OpenStack's own clients through the VIP saw (oslo.messaging RPC and an oslo.db writer with
hactl's rendered settings: longest gaps, calls failed), then the API servers of
the two healthy nodes any HAProxy held in drain or maint at any time (must be none), the
seconds from the heal until every server is UP on every HAProxy and until the whole checked
baseline holds, and the reconciler's corrections after the heal. The baseline the figures are
read against is the same lab's own heal of a 14 s cut (below the loss verdicts: nothing to
repair but the network), run first.
Usage: sudo .venv/bin/python benchmarks/silence.py [--runs N] [--seconds 30,60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import lab_folder
from hactl.lab import lab as L
from hactl.lab.baseline import wait_baseline
from hactl.lab.net import LabError
from tests.lab.helpers import recent_decisions
from tests.lab.test_silence import holder_silence, line

SUBNET = "10.99.2"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", default="30,60")
    ap.add_argument("--json", action="store_true", help="every run's figures, after the table")
    args = ap.parse_args()
    folder = lab_folder("silence.py")
    if folder is None:
        return 2
    lab = L.up(folder, 3, set(L.COMPONENTS), subnet=SUBNET, prefix="hsl", say=lambda _m: None)
    runs: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, list[str]] = {}
    try:
        plan = [(14.0, False)] + [
            (float(s), restart) for s in args.seconds.split(",") for restart in (False, True)
        ]
        for seconds, restart in plan:
            key = f"{seconds:g}s{' +master restart' if restart else ''}"
            for i in range(1 if seconds == 14.0 else args.runs):
                wait_baseline(lab, 240)
                try:
                    f = holder_silence(lab, seconds, restart, leaders=True)
                except LabError as exc:  # a run whose clients could not be read: said, counted
                    errors.setdefault(key, []).append(str(exc)[:300])
                    print(f"{key} {i + 1}: FAILED {exc}"[:400], file=sys.stderr, flush=True)
                    continue
                except AssertionError as exc:  # not healed in time: counted, with the trail
                    errors.setdefault(key, []).append(str(exc)[:300])
                    print(f"{key} {i + 1}: NOT HEALED {exc}", file=sys.stderr, flush=True)
                    print(recent_decisions(lab, "6m"), file=sys.stderr, flush=True)
                    continue
                runs.setdefault(key, []).append(f)
                print(f"{key} {i + 1}: {line(f)}", file=sys.stderr, flush=True)
        wait_baseline(lab, 240)
    finally:
        L.teardown(lab, say=lambda _m: None)
    base = (
        statistics.median(
            r["all_up_after_heal_s"] for r in runs.get("14s", [{"all_up_after_heal_s": 0.1}])
        )
        or 0.1
    )
    print(
        f"{'case':<22} {'runs':>4} {'RPC gap p50/max':>16} {'RPC failed':>10} "
        f"{'DB gap p50/max':>15} {'healthy out':>11} {'all UP p50/max':>15} "
        f"{'ratio':>6} {'baseline p50/max':>17} {'fixes p50':>9}"
    )
    summary: dict[str, Any] = {}
    for key, rs in runs.items():
        up = sorted(r["all_up_after_heal_s"] for r in rs)
        whole = sorted(r["baseline_after_heal_s"] for r in rs)
        out = sum(len(r["healthy_taken_out"]) for r in rs)
        fixes = statistics.median(len(r["corrections_after_heal"]) for r in rs)
        summary[key] = {
            "runs": rs,
            "healthy_taken_out": out,
            "ratio_up_p50": up[len(up) // 2] / base,
        }
        rpc = sorted(r["clients"]["rpc"]["longest_gap"] for r in rs)
        db = sorted(r["clients"]["db"]["longest_gap"] for r in rs)
        failed = sum(r["clients"]["rpc"]["failed"] for r in rs)
        print(
            f"{key:<22} {len(rs):>4} {statistics.median(rpc):>7.2f}/{rpc[-1]:<8.2f} "
            f"{failed:>10} {statistics.median(db):>7.2f}/{db[-1]:<7.2f} "
            f"{out:>11} {statistics.median(up):>7.1f}/{up[-1]:<7.1f} "
            f"{statistics.median(up) / base:>6.2f} {statistics.median(whole):>8.1f}/"
            f"{whole[-1]:<8.1f} {fixes:>9g}"
        )
    for key, errs in errors.items():
        print(f"{key}: {len(errs)} run(s) failed: {errs[0]}")
    if args.json:
        print(json.dumps({"runs": summary, "errors": errors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
