"""HAProxy's check intervals, A/B on one lab (decision 60): how soon a server is out, and back.

A full lab (root; subnet 10.99.2) applies two `haproxy.check` settings in turn (``--rounds``
times): `fastinter` and `downinter` equal to `inter` (HAProxy's behaviour without them) and
the lab's shipped ones. Under each, ``--runs`` times: an nft rule in ctl2's namespace refuses
its nova-api stand-in (TCP reset), the seconds until ``be_nova_api/ctl2`` is not UP on all
three HAProxies; the rule removed, the seconds until it is UP on all three. The two settings
alternate in the same lab and hour, so the ratio between them is the figure.
Usage: sudo .venv/bin/python benchmarks/haproxy_checks.py [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import lab_folder
from hactl.lab import lab as L
from hactl.lab.baseline import wait_baseline
from tests.lab.helpers import heal_galera, refuse_port, server_status, wait_until
from tests.lab.test_rabbit import _apply

SUBNET = "10.99.2"
NODE, KEY, PORT = "ctl2", "be_nova_api/ctl2", 8774
SETTINGS = {
    "inter only": "{inter: 1s, fastinter: 1s, downinter: 1s, fall: 2, rise: 2}",
    "fastinter/downinter": "{inter: 1s, fastinter: 250ms, downinter: 500ms, fall: 2, rise: 2}",
}


def _everywhere(lab: L.Lab, up: bool) -> bool:
    return all((server_status(lab, h).get(KEY) == "UP") == up for h in lab.net.nodes)


def one(lab: L.Lab, pause: float) -> tuple[float, float]:
    """Refuse the server, time it out on every HAProxy; allow it, time it back."""
    wait_until(lambda: _everywhere(lab, True), 60, f"{KEY} UP everywhere")
    time.sleep(pause)  # a different phase of HAProxy's check timer each run
    refuse_port(lab, NODE, PORT)
    t0 = time.monotonic()
    try:
        out = wait_until(lambda: _everywhere(lab, False), 60, f"{KEY} out", 0.02) - t0
        time.sleep(3.0 + pause / 4)
    finally:
        heal_galera(lab, NODE)
    t1 = time.monotonic()
    back = wait_until(lambda: _everywhere(lab, True), 60, f"{KEY} back", 0.02) - t1
    return out, back


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    folder = lab_folder("haproxy_checks.py")
    if folder is None:
        return 2
    lab = L.up(folder, 3, set(L.COMPONENTS), subnet=SUBNET, prefix="hck", say=lambda _m: None)
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in SETTINGS}
    try:
        for _ in range(args.rounds):
            for name, check in SETTINGS.items():
                extra = lab.dir / "checks.yaml"
                extra.write_text(f"haproxy:\n  check: {check}\n")
                res = _apply(lab, "--pillar", str(extra), "--wait", "60s")
                if res.returncode != 0:
                    print(f"{name}: apply failed\n{res.stdout[-2000:]}", file=sys.stderr)
                    return 1
                wait_baseline(lab, 240)
                for i in range(args.runs):
                    got[name].append(one(lab, 1.3 + 0.37 * i))
                    print(f"{name} {len(got[name])}: out {got[name][-1][0]:.2f} s, back "
                          f"{got[name][-1][1]:.2f} s", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        L.teardown(lab, say=lambda _m: None)
    print(f"{'setting':<22} {'runs':>4} {'out p50 (min-max)':>20} {'back p50 (min-max)':>20} "
          f"{'ratio out/back':>15}")  # fmt: skip
    ref_out = statistics.median(r[0] for r in got["inter only"])
    ref_back = statistics.median(r[1] for r in got["inter only"])
    for name, rows in got.items():
        out = sorted(r[0] for r in rows)
        back = sorted(r[1] for r in rows)
        print(
            f"{name:<22} {len(rows):>4} {statistics.median(out):>7.2f} ({out[0]:.2f}-{out[-1]:.2f})"
            f" {statistics.median(back):>8.2f} ({back[0]:.2f}-{back[-1]:.2f}) "
            f"{statistics.median(out) / ref_out:>7.2f}/{statistics.median(back) / ref_back:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
