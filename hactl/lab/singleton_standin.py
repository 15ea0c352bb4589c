"""The lab's stand-in for a singleton service (nova-scheduler and the like): it logs, every
50 ms, that it is alive, with CLOCK_MONOTONIC (one clock for every namespace of the host), so
the copies of all nodes can be laid on one time line and any overlap is seen
(``python -m hactl.lab.singleton_standin --log FILE --node ctl1``)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from types import FrameType

TICK = 0.05


def main() -> None:
    """Log start, alive every TICK, stop on SIGTERM."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--node", required=True)
    args = ap.parse_args()
    log = Path(args.log).open("a", buffering=1)  # noqa: SIM115 - open for the process's life
    stopping: list[bool] = []

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, on_term)
    log.write(f"start {args.node} {os.getpid()} {time.monotonic():.3f} {time.time():.3f}\n")
    while not stopping:
        log.write(f"alive {args.node} {os.getpid()} {time.monotonic():.3f}\n")
        time.sleep(TICK)
    log.write(f"stop {args.node} {os.getpid()} {time.monotonic():.3f}\n")


def intervals(lines: list[str]) -> list[tuple[str, int, float, float]]:
    """(node, pid, first, last) monotonic seconds each copy was seen alive, by start."""
    seen: dict[tuple[str, int], list[float]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[0] in ("start", "alive", "stop"):
            key = (parts[1], int(parts[2]))
            seen.setdefault(key, []).append(float(parts[3]))
    return sorted(((n, p, min(t), max(t)) for (n, p), t in seen.items()), key=lambda x: x[2])


def overlaps(lines: list[str]) -> list[str]:
    """Every pair of copies on different nodes whose alive intervals overlap ([] = none)."""
    ivs = intervals(lines)
    out = []
    for i, (n1, p1, s1, e1) in enumerate(ivs):
        for n2, p2, s2, e2 in ivs[i + 1 :]:
            if n1 != n2 and s2 < e1 and s1 < e2:
                out.append(f"{n1}/{p1} [{s1:.3f}, {e1:.3f}] and {n2}/{p2} [{s2:.3f}, {e2:.3f}]")
    return out


if __name__ == "__main__":
    main()
