"""Finding a daemon by what it is, not by its pid file alone.

A pid file can be deleted (by hand, by a second copy's failed boot, by a cleanup script) while
its daemon runs on; a supervisor that trusts only the file starts a second copy (issue 26: a
broker started every ~2 s for ever, each copy dying on the port the first still held).
minion.yaml ``services.<name>.process`` names the daemon by its command line: a list of
arguments that must all appear in a process's argv, the first matching the program (its path
or its name). A process that matches is the daemon, whatever its pid file says -- if it lives
in the minion's own network namespace (a host's daemons share one; the lab's nodes are one
namespace each, so ctl2's broker is never taken for ctl1's).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Sequence
from pathlib import Path

PROC = Path("/proc")


def _argv(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if not raw or state == "Z":  # a kernel thread, or killed and not yet reaped
        return None
    return raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def matches(argv: Sequence[str], pattern: Sequence[str]) -> bool:
    """Whether a process's ``argv`` is the daemon ``pattern`` names (pure): its program is
    the first word (as given, or by name), and every other word is one of its arguments."""
    if not argv or not pattern:
        return False
    program = pattern[0]
    if argv[0] != program and os.path.basename(argv[0]) != os.path.basename(program):
        return False
    args = set(argv[1:])
    return all(word in args for word in pattern[1:])


def _netns(where: Path) -> int | None:
    try:
        return (where / "ns" / "net").stat().st_ino
    except OSError:
        return None


def find(pattern: Sequence[str], exclude: Collection[int] = ()) -> int | None:
    """The oldest live process in this network namespace that ``pattern`` matches (a
    daemon's parent before the children it forked: lowest start time), or None; the pids in
    ``exclude`` (the daemon's own children, by their pid files) never count."""
    here = _netns(PROC / "self")
    best: tuple[int, int] | None = None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in exclude:
            continue
        argv = _argv(pid)
        if argv is None or not matches(argv, pattern) or _netns(entry) != here:
            continue
        started = _start_ticks(pid)
        if started is None:
            continue
        if best is None or (started, pid) < best:
            best = (started, pid)
    return best[1] if best else None


def boot_time(stat: str) -> float:
    """The system's boot time (seconds since the epoch) from ``/proc/stat``'s ``btime``."""
    for line in stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime line")


def _start_ticks(pid: int) -> int | None:
    """Process ``pid``'s ``starttime`` (clock ticks after boot), or None when it is gone."""
    try:
        return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@functools.cache
def _boot() -> float:
    return boot_time((PROC / "stat").read_text())  # fixed for the life of the system


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it is gone."""
    ticks = _start_ticks(pid)
    return None if ticks is None else _boot() + ticks / os.sysconf("SC_CLK_TCK")
