"""hactl lab down leaves nothing: no namespace, process, route, mount or file of the lab."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.conftest import _missing, report


def test_lab_down_leaves_nothing() -> None:
    """A small lab (HAProxy, keepalived) up and down: then every trace is gone."""
    if why := _missing():
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="hactl-labdown-")) / "lab"
    lab = L.up(
        folder,
        2,
        {"haproxy", "keepalived"},
        subnet="10.99.2",
        prefix=f"hd{os.getpid() % 1000}",
        say=lambda _: None,
    )
    pids = [p for p in lab.pids.values()] + [
        p for n in lab.net.nodes for c in ("haproxy", "keepalived") if (p := lab.daemon_pid(n, c))
    ]
    assert all(d.alive(p) for p in pids) and len(pids) >= 9
    L.teardown(lab, say=report)
    assert not [p for p in pids if d.alive(p)], "a process survived"
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert lab.net.prefix not in netns
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "10.99.2." not in routes
    links = subprocess.run(["ip", "link"], capture_output=True, text=True, check=True).stdout
    assert lab.net.root_link not in links
    assert lab.net.root_external_link not in links
    assert (
        not any(Path("/etc/netns").glob(f"{lab.net.prefix}-*"))
        if Path("/etc/netns").exists()
        else True
    )
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"/run/netns/{lab.net.prefix}" not in mounts
    # the Galera datadirs of the labs torn down before this one (their own filesystems)
    assert "/hactl-labtest-" not in mounts, [m for m in mounts.splitlines() if "hactl-lab" in m]
    assert not folder.exists()
    folder.parent.rmdir()  # the test's own temporary parent (empty: nothing else was there)
