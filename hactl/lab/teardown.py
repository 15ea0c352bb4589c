"""``hactl lab down``: end what a lab started, by pid, then what remains in its own
namespaces; unmount its datadirs; remove its network and (unless kept) its folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from hactl.lab import daemons as d
from hactl.lab import registry
from hactl.lab.model import Lab
from hactl.lab.net import down as net_down
from hactl.lab.net import ip
from hactl.minion.beacons.keepalived_state import JSON_FILE


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        if d.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _same_process(lab: Lab, pid: int) -> bool:
    """``pid`` lives and is the process the lab recorded (same start time, when known)."""
    return d.alive(pid) and lab.starts.get(pid, 0) in (0, registry.start_time(pid))


def teardown(lab: Lab, say: Any = print, *, keep_logs: bool = False) -> list[str]:
    """End what the lab started (by pid), then what remains in its namespaces; remove all."""
    t0 = time.monotonic()
    # only what is provably the lab's: a recorded pid still the same process, a pid file's pid
    # inside the lab's namespaces (a lab left over by a dead run may name reused pids)
    pids = [p for p in lab.pids.values() if _same_process(lab, p)]
    existing = set(ip("netns", "list", check=False).stdout.split())
    inside = {
        int(p)
        for ns in lab.net.namespaces()
        if ns in existing
        for p in ip("netns", "pids", ns, check=False).stdout.split()
    }
    for node in lab.net.nodes:
        for comp in ("haproxy", "keepalived", "galera", "rabbitmq"):
            pid = lab.daemon_pid(node, comp)
            if pid and pid in inside:
                pids.append(pid)
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(d.alive(p) for p in pids):
        time.sleep(0.1)
    _signal_all(pids, signal.SIGKILL)
    existing = set(ip("netns", "list", check=False).stdout.split())
    for ns in lab.net.namespaces():  # epmd, SST helpers, check scripts: still ours
        if ns in existing:
            left = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
            _signal_all(left, signal.SIGKILL)
    time.sleep(0.3)
    # the JSON dumps the lab's minions asked its keepalived for (keepalived_state.py): a
    # fixed path in /tmp, and its lock
    for leftover in (JSON_FILE, f"{JSON_FILE}.hactl-lock"):
        Path(leftover).unlink(missing_ok=True)
    problems = [p for n in lab.net.nodes if (p := d.datadir_unmount(lab.node_dir(n)))]
    problems += net_down(lab.net)
    if keep_logs:
        (lab.dir / "lab.json").unlink(missing_ok=True)
        for n in lab.net.nodes:  # the brokers' homes (their cookie)
            shutil.rmtree(lab.node_dir(n) / "rabbit/home", ignore_errors=True)
    else:
        shutil.rmtree(lab.dir, ignore_errors=True)
    say(
        f"lab down: {time.monotonic() - t0:.2f} s" + (f"; problems: {problems}" if problems else "")
    )
    return problems
