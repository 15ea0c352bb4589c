"""Failover as a client of the VIP feels it: distributions over repeated faults, against
baselines measured in the same run.

For each variant a lab of three controllers is built (root; subnet 10.99.2, never two at
once) with minions that restart dead daemons (supervision), and each fault is repeated
``--runs`` times (default 10). A client opens a fresh TCP connection to the VIP every 20 ms
(100 ms connect timeout, 200 ms for the answer) from before the fault until things are stable
again -- fail-back included -- and records every gap between two answered requests.

Variants (same faults, same machine, same run):
- ``hactl``: the shipped setup -- the minion learns of HAProxy's death from a pidfd and
  flags it in a file keepalived tracks (FAULT at once), plus the reconciler;
- ``script``: the minions' fast path off (minion.yaml ``vrrp.watch: []``): keepalived's own
  script check (interval 1 s, fall 2) is all that moves the VIP -- the daemons alone.

Faults: ``haproxy`` (kill -9 of HAProxy on the VIP holder; the minion's supervisor starts it
again, and the VIP may move back).

Printed: one table (p50 / p95 / max of the time until the VIP is on another node -- when it
moved at all: a supervisor may restart HAProxy before keepalived's check notices -- and of the
longest client gap, failed requests per run) and one JSON line.
Usage: sudo .venv/bin/python benchmarks/failover.py [--runs N] [--variants hactl,script]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hactl.lab import lab as L

SUBNET = "10.99.2"


@dataclass
class Client:
    """A fresh connection every ``period``; records (start, ok) of each request."""

    host: str
    port: int = 5000
    period: float = 0.02
    samples: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.1) as s:
                s.settimeout(0.2)
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.samples.append((t, self._once()))
            time.sleep(max(0.0, self.period - (time.monotonic() - t)))

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def gaps(self, since: float) -> list[float]:
        """Every interval between two answered requests after ``since`` longer than two
        periods (a request that failed in between)."""
        ok = [t for t, good in self.samples if good and t >= since]
        return [b - a for a, b in itertools.pairwise(ok) if b - a > 2.5 * self.period]

    def failed(self, since: float) -> int:
        """Requests that failed after ``since``."""
        return sum(1 for t, good in self.samples if t >= since and not good)


def _wait(what: str, ok: Any, timeout: float, step: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if ok():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


def _baseline(lab: L.Lab, vip: str) -> str:
    """Wait until the lab is healthy: HAProxy on every node, one VIP holder; the holder."""
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


def haproxy_kill(lab: L.Lab) -> dict[str, float]:
    """kill -9 HAProxy on the VIP holder; until it is restarted and the VIP is stable 4 s."""
    vip = lab.net.vip(0)
    holder = _baseline(lab, vip)
    pid = lab.daemon_pid(holder, "haproxy")
    assert pid
    with Client(vip) as client:
        time.sleep(1.0)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        moved = _settle(lab, vip, holder, t0, lambda: lab.daemon_pid(holder, "haproxy"))
    gaps = client.gaps(t0 - 0.5)
    return {
        "vip_s": moved if moved is not None else float("nan"),
        "gap_s": max(gaps, default=0.0),
        "gaps": float(len(gaps)),
        "failed": float(client.failed(t0)),
    }


FAULTS = {"haproxy": haproxy_kill}


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--variants", default="hactl,script")
    ap.add_argument("--faults", default=",".join(FAULTS))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("failover.py: needs root (a lab in network namespaces)", file=sys.stderr)
        return 2
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for variant in args.variants.split(","):
        folder = Path(tempfile.mkdtemp(prefix=f"hactl-failover-{variant}-")) / "lab"
        lab = L.up(
            folder,
            3,
            {"haproxy", "keepalived"},
            subnet=SUBNET,
            prefix="hfo",
            say=lambda _m: None,
            supervise=True,
            fast_path=variant == "hactl",
        )
        try:
            for fault in args.faults.split(","):
                rows = results.setdefault(fault, {}).setdefault(variant, {})
                for i in range(args.runs):
                    got = FAULTS[fault](lab)
                    for k, v in got.items():
                        rows.setdefault(k, []).append(v)
                    print(
                        f"{fault} {variant} run {i + 1}/{args.runs}: "
                        + " ".join(f"{k}={v:.3f}" for k, v in got.items()),
                        flush=True,
                    )
        finally:
            L.teardown(lab, say=lambda _m: None)
    print(f"\n{'fault':10} {'variant':8} {'metric':8} {'p50':>7} {'p95':>7} {'max':>7}")
    summary: dict[str, Any] = {"runs": args.runs, "results": {}}
    for fault, variants in results.items():
        for variant, rows in variants.items():
            for metric in ("vip_s", "gap_s", "failed"):
                vals = [v for v in rows[metric] if v == v]  # NaN: the VIP did not move
                if not vals:
                    print(f"{fault:10} {variant:8} {metric:8} {'(never)':>7}")
                    continue
                p50, p95, top = _pct(vals, 50), _pct(vals, 95), max(vals)
                print(f"{fault:10} {variant:8} {metric:8} {p50:7.3f} {p95:7.3f} {top:7.3f}")
                summary["results"].setdefault(fault, {}).setdefault(variant, {})[metric] = {
                    "p50": round(p50, 3),
                    "p95": round(p95, 3),
                    "max": round(top, 3),
                }
    base = summary["results"].get("haproxy", {})
    if "hactl" in base and "script" in base:
        ratio = base["hactl"]["gap_s"]["p95"] / max(base["script"]["gap_s"]["p95"], 1e-9)
        summary["haproxy_gap_p95_ratio_to_script"] = round(ratio, 3)
        print(f"\nhaproxy kill: p95 longest gap hactl / script-check baseline = {ratio:.2f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
