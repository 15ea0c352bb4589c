"""hactl lab down leaves nothing: no namespace, process, route, mount or file of the lab."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab import registry
from hactl.lab.net import LabError, LabNet
from hactl.lab.net import down as net_down
from hactl.lab.net import up as net_up
from hactl.lab.reclaim import reclaim
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


_LEFTOVER = """
import os, subprocess, sys
from hactl.lab.net import LabNet, exec_argv, up
net = LabNet(sys.argv[1], sys.argv[2], ("ctl1",))
up(net, ephemeral=sys.argv[3] == "1")
child = subprocess.Popen(
    exec_argv(net, "ctl1", ["sleep", "600"]),
    start_new_session=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
print(child.pid, flush=True)
os._exit(0)  # cut off: no teardown, as a killed run
"""


def _leave_a_lab(prefix: str, subnet: str, *, ephemeral: bool) -> int:
    """A network-only lab with a process in it, whose builder died without tearing it down."""
    res = subprocess.run(
        [sys.executable, "-c", _LEFTOVER, prefix, subnet, "1" if ephemeral else "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return int(res.stdout.split()[0])


@pytest.mark.parametrize("ephemeral", [True, False], ids=["ephemeral", "lasting"])
def test_a_lab_left_by_a_dead_run_is_taken_down_by_the_next(ephemeral: bool) -> None:
    """A test's lab whose run died (namespaces, routes, a process in them) is taken down before
    the next lab builds; a lasting lab (`hactl lab up`) whose daemons still run is left alone."""
    if why := _missing():
        pytest.skip(why)
    prefix, subnet = f"hr{os.getpid() % 1000}", "10.99.3"
    sleeper = _leave_a_lab(prefix, subnet, ephemeral=ephemeral)
    try:
        assert d.alive(sleeper) and f"{prefix}-ctl1" in _netns()
        said: list[str] = []
        taken = reclaim(said.append)
        if ephemeral:
            assert prefix in taken and "left over by pid" in said[0], said
            assert not d.alive(sleeper) and prefix not in _netns()
            assert f"{subnet}." not in _run("ip", "route")
            assert not (registry.REGISTRY / f"{prefix}.json").exists()
        else:
            assert prefix not in taken and d.alive(sleeper) and f"{prefix}-ctl1" in _netns()
            # its subnet is taken: a lab on it fails with one line naming the holder
            with pytest.raises(LabError, match=f"subnet {subnet}.0/24 is taken by lab {prefix}"):
                net_up(LabNet(f"hq{os.getpid() % 1000}", subnet, ("ctl1",)))
            # once nothing of it runs, it is left over too
            os.kill(sleeper, signal.SIGKILL)
            _wait_gone(sleeper)
            assert prefix in reclaim(said.append) and prefix not in _netns()
    finally:
        if d.alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)
        net_down(LabNet(prefix, subnet, ("ctl1",)))


def _netns() -> str:
    return _run("ip", "netns", "list")


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while d.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
