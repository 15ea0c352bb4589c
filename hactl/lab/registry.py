"""Which labs this machine runs, and who owns them: so a lab whose owner died is found and
taken down by the next one, instead of making it fail on ``RTNETLINK answers: File exists``.

A lab's namespaces, routes, veths and loop mounts are kernel state: they outlive the process
that made them. A test run cut off mid-way (a session that ends, a CI job killed at its
limit, a machine whose processes were all stopped) leaves them, and the next lab on the same
subnet cannot build its routes. So every network :func:`hactl.lab.net.up` builds is
registered in ``/run/hactl/labs/<prefix>.json`` (``/run`` is a tmpfs: it goes with a reboot,
as the namespaces do) with its owner: the pid and kernel start time of the process that built
it, so a reused pid is never taken for the owner.

A registered lab is **stale** when its owner is gone and either it was ephemeral (a test's or
a benchmark's lab, torn down by its owner in ``finally``) or nothing of it runs any more (no
process in its namespaces, none of the pids it recorded). ``hactl lab up`` (the CLI) makes a
lasting lab: its owner exits at once, and the lab stays for as long as its daemons do.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

#: where the entries live (a test points it elsewhere)
REGISTRY = Path(os.environ.get("HACTL_LAB_REGISTRY", "/run/hactl/labs"))


def start_time(pid: int | None) -> int | None:
    """The kernel start time (clock ticks since boot) of a live, non-zombie ``pid``."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3 of proc(5)); starttime is field 22
    return None if fields[0] == "Z" else int(fields[19])


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered lab network."""

    prefix: str
    subnet: str
    nodes: tuple[str, ...]
    owner: int
    owner_start: int
    ephemeral: bool
    dir: str | None = None  # the lab's folder (a network-only lab has none)
    registered: float = 0.0

    def owner_alive(self) -> bool:
        """The process that built the lab still runs (the same process, not a reused pid)."""
        return start_time(self.owner) == self.owner_start


def register(
    prefix: str, subnet: str, nodes: tuple[str, ...], *, ephemeral: bool, folder: Path | None
) -> Entry:
    """Record a lab network as owned by this process."""
    me = os.getpid()
    entry = Entry(
        prefix,
        subnet,
        nodes,
        me,
        start_time(me) or 0,
        ephemeral,
        str(folder) if folder else None,
        time.time(),
    )
    REGISTRY.mkdir(parents=True, exist_ok=True)
    tmp = REGISTRY / f".{prefix}.json.tmp"
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(REGISTRY / f"{prefix}.json")
    return entry


def unregister(prefix: str) -> None:
    """Forget a lab network (it is down)."""
    (REGISTRY / f"{prefix}.json").unlink(missing_ok=True)


def entries() -> list[Entry]:
    """Every registered lab; an unreadable entry is skipped (and left for a human)."""
    out = []
    for path in sorted(REGISTRY.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            raw["nodes"] = tuple(raw["nodes"])
            out.append(Entry(**raw))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return out


def stale(entry: Entry, running: Callable[[Entry], bool]) -> bool:
    """Whether ``entry``'s lab is left over: its owner gone, and it was ephemeral or
    ``running(entry)`` (anything of it still alive) says no."""
    if entry.owner_alive():
        return False
    return entry.ephemeral or not running(entry)
