"""Take down the labs an earlier run left over (hactl/lab/registry.py says which), before a
new one is built: their namespaces, routes and loop-mounted datadirs would make it fail.

Only what is provably theirs is ended: the processes inside their own namespaces, and the
pids their lab.json recorded when each is still the same process (same kernel start time).
Their logs stay in their folder; what happened is said, one line per lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from hactl.lab import daemons as d
from hactl.lab import registry
from hactl.lab.model import Lab
from hactl.lab.net import LabError, LabNet, ip
from hactl.lab.net import down as net_down
from hactl.lab.teardown import teardown


def running(entry: registry.Entry) -> bool:
    """Anything of the lab still alive: a process in its namespaces, or a pid it recorded."""
    existing = set(ip("netns", "list", check=False).stdout.split())
    net = LabNet(entry.prefix, entry.subnet, entry.nodes)
    for ns in net.namespaces():
        if ns in existing and ip("netns", "pids", ns, check=False).stdout.split():
            return True
    folder = Path(entry.dir) if entry.dir else None
    if folder and (folder / "lab.json").exists():
        try:
            lab = Lab.load(folder)
        except LabError:
            return False
        return any(
            d.alive(p) and lab.starts.get(p) == registry.start_time(p) for p in lab.pids.values()
        )
    return False


def reclaim(say: Any = print) -> list[str]:
    """Take down every stale lab; returns the prefixes taken down."""
    done = []
    for entry in registry.entries():
        if not registry.stale(entry, running):
            continue
        folder = Path(entry.dir) if entry.dir else None
        say(
            f"  taking down lab {entry.prefix} ({entry.subnet}.0/24"
            f"{', ' + str(folder) if folder else ''}): left over by pid {entry.owner}, gone now"
        )
        if folder and (folder / "lab.json").exists():
            problems = teardown(Lab.load(folder), say=lambda _m: None, keep_logs=True)
        else:
            net = LabNet(entry.prefix, entry.subnet, entry.nodes)
            existing = set(ip("netns", "list", check=False).stdout.split())
            for ns in net.namespaces():
                if ns in existing:
                    for pid in ip("netns", "pids", ns, check=False).stdout.split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
            problems = [p for n in net.nodes if folder and (p := d.datadir_unmount(folder / n))]
            problems += net_down(net)
        if problems:
            say(f"  could not take all of lab {entry.prefix} down: {problems}")
            continue
        registry.unregister(entry.prefix)
        done.append(entry.prefix)
    return done
