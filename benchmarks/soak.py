"""Soak: an idle lab on a loaded machine must not fail over by itself.

The LAN profile (pillar ``galera.profile: lan``: evs.suspect_timeout 1 s) and keepalived's
0.2 s adverts trade false alarms for speed; this checks the trade. A lab of three controllers
(HAProxy, keepalived, Galera; the master and its reconciler running) is left idle for
``--seconds`` (default 600) while ``stress-ng --cpu N`` (default 2: every core of these
machines) loads the machine. Counted: VRRP state transitions (from the minions' vrrp beacon
events in the stream) and Galera view changes (each node's ``wsrep_cluster_conf_id`` before
and after) -- both must be 0 -- and the reconciler's corrections (``reconcile/done``).
Root. Usage: sudo .venv/bin/python benchmarks/soak.py [--seconds 600] [--cpu 2]
[--profile lan|default|lan:evs.suspect_timeout=PT0.6S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import lab_folder
from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.helpers import stored_events


def _conf_ids(lab: L.Lab) -> dict[str, int]:
    out = {}
    for n in lab.net.nodes:
        rows = d.galera_sql(
            lab.node_dir(n) / "mysql/mysqld.sock", "SHOW STATUS LIKE 'wsrep_cluster_conf_id'"
        )
        out[n] = int(str(rows[0][1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--cpu", type=int, default=2)
    ap.add_argument(
        "--profile",
        default="lan",
        help="lan, default, or lan:KEY=VALUE,... (provider options tried on top of a profile)",
    )
    args = ap.parse_args()
    folder = lab_folder("soak.py")
    if folder is None:
        return 2
    stress = shutil.which("stress-ng")
    if stress is None:
        print("soak.py: stress-ng missing (scripts/install.sh installs it)", file=sys.stderr)
        return 2
    lab = L.up(
        folder,
        3,
        {"haproxy", "keepalived", "galera"},
        subnet="10.99.2",
        prefix="hsk",
        say=lambda _m: None,
        galera_profile=args.profile,
    )
    load: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(10.0)  # every check risen, the view settled
        before = _conf_ids(lab)
        since = datetime.now(UTC)
        load = subprocess.Popen(
            [stress, "--cpu", str(args.cpu), "--timeout", f"{args.seconds}s", "--quiet"]
        )
        t0 = time.monotonic()
        load.wait(args.seconds + 60)
        elapsed = time.monotonic() - t0
        after = _conf_ids(lab)
        vrrp = asyncio.run(stored_events(lab, "hactl/beacon/*/vrrp", since))
        transitions = [
            {"node": e.minion, "item": c.get("item"), "to": c.get("value"), "from": c.get("prev")}
            for e in vrrp
            for c in e.data.get("changes") or []
            if c.get("field") == "state"
        ]
        fixes = asyncio.run(stored_events(lab, "hactl/reactor/reconcile/done", since))
        views = {n: after[n] - before[n] for n in lab.net.nodes}
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait(10)
        L.teardown(lab, say=lambda _m: None)
    summary = {
        "seconds": round(elapsed, 1),
        "cpu_load": args.cpu,
        "galera_profile": args.profile,
        "vrrp_transitions": len(transitions),
        "galera_view_changes": max(views.values()),
        "reconciler_corrections": len(fixes),
        "transitions": transitions[:20],
    }
    print(
        f"soak {elapsed:.0f} s under stress-ng --cpu {args.cpu} (galera profile"
        f" {args.profile}): {len(transitions)} VRRP transitions, Galera view changes"
        f" {views}, {len(fixes)} reconciler corrections"
    )
    print(json.dumps(summary))
    return 0 if not transitions and not any(views.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
