"""CLI start-up: what one ``hactl`` invocation costs before it does anything.

Scripts call hactl many times (docs/deploy.md's first apply runs it seven times; the lab's
bring-up runs it for every block). Each command imports only its own module
(hactl/cli/app.py's table); ``hactl --help`` still imports the whole table, which is what
every invocation paid before: it is the baseline of the same run. Median wall time of
``--runs`` (default 15) runs of each, and its ratio to the baseline.
Usage: .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HACTL = str(Path(sys.executable).parent / "hactl")
CASES = {
    "hactl --help (the whole table: the baseline)": ["--help"],
    "hactl version": ["version"],
    "hactl ping --help": ["ping", "--help"],
    "hactl auth export --help": ["auth", "export", "--help"],
    "hactl apply --help": ["apply", "--help"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.runs):  # interleaved: the machine's noise falls on every case alike
        for name, argv in CASES.items():
            t = time.perf_counter()
            subprocess.run([HACTL, *argv], capture_output=True, check=True, timeout=60)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(next(iter(times.values())))
    print(f"{'invocation':<46} {'median s':>9} {'ratio':>6}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<46} {med:>9.3f} {med / base:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
