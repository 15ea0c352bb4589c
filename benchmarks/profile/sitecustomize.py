"""Profile the hactl processes a benchmark spawns: ``cProfile`` from start-up to exit.

Usage (the master's profile of the reactor's latency benchmark)::

    HACTL_PROFILE_DIR=/tmp/prof HACTL_PROFILE_ONLY=master \\
        PYTHONPATH=/path/to/main/benchmarks/profile \\
        .venv/bin/python benchmarks/reactor_latency.py 2000
    .venv/bin/python -c "import pstats; pstats.Stats('/tmp/prof/master-<pid>.prof')\\
        .sort_stats('tottime').print_stats(30)"

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH`` and children inherit the
environment, so every ``hactl`` child whose command line names ``HACTL_PROFILE_ONLY`` (any
when unset) is profiled; its profile is written at a clean exit (a SIGTERM the master handles
is one) to ``HACTL_PROFILE_DIR/<word>-<pid>.prof``. The benchmark's own process is not.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import sys

_DIR = os.environ.get("HACTL_PROFILE_DIR", "")
_ONLY = os.environ.get("HACTL_PROFILE_ONLY", "")


def _start() -> None:
    """Profile this process when it is a ``hactl`` child the environment asks for."""
    argv = sys.argv
    if not _DIR or not argv or os.path.basename(argv[0]) != "hactl":
        return
    if _ONLY and _ONLY not in argv[1:]:
        return
    word = _ONLY or (argv[1] if len(argv) > 1 else "hactl")
    profile = cProfile.Profile()
    out = os.path.join(_DIR, f"{word}-{os.getpid()}.prof")

    def dump() -> None:
        profile.disable()
        os.makedirs(_DIR, exist_ok=True)
        profile.dump_stats(out)

    atexit.register(dump)
    profile.enable()


_start()
