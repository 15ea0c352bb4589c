"""A daemon found by its command line when its pid file is gone (minion/procfind.py), on the
real /proc: the service counts as running, its pid is the oldest copy, a zombie is not one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hactl.minion.executors.base import ServiceCommands
from hactl.minion.procfind import find

pytestmark = pytest.mark.integration


def _sleeper(marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])


def test_a_service_without_its_pid_file_is_found_by_its_command_line(tmp_path: Path) -> None:
    """The pid file deleted while the daemon runs: pid() still names it (oldest of two
    copies); killed and reaped, nothing is found and the service does not run."""
    marker = f"hactl-procfind-{time.monotonic_ns()}"
    first = _sleeper(marker)
    time.sleep(0.05)
    second = _sleeper(marker)
    pidfile = tmp_path / "d.pid"
    svc = ServiceCommands(pidfile=str(pidfile), process=(sys.executable, marker))
    try:
        pidfile.write_text(f"{second.pid}\n")
        assert svc.pid() == second.pid  # the pid file first
        pidfile.unlink()
        assert svc.pid() == first.pid  # then the oldest process that is the daemon
        assert ServiceCommands(pidfile=str(pidfile)).pid() is None  # a pid file alone: lost
        first.kill()
        first.wait()
        second.kill()
        time.sleep(0.1)  # killed, not yet reaped: a zombie is not a copy
        assert find((sys.executable, marker)) is None
        assert svc.pid() is None
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_a_child_left_by_its_killed_parent_is_not_the_daemon(tmp_path: Path) -> None:
    """keepalived's VRRP child has its parent's command line: with the parent dead (its pid
    file naming a gone pid) the child, named by its own pid file, is not taken for the
    running daemon -- a start must follow, not "already running"."""
    marker = f"hactl-procfind-{time.monotonic_ns()}"
    parent = _sleeper(marker)
    time.sleep(0.05)
    child = _sleeper(marker)
    main, vrrp = tmp_path / "keepalived.pid", tmp_path / "vrrp.pid"
    svc = ServiceCommands(
        pidfile=str(main), process=(sys.executable, marker), pidfiles=(str(vrrp),)
    )
    try:
        main.write_text(f"{parent.pid}\n")
        vrrp.write_text(f"{child.pid}\n")
        assert svc.pid() == parent.pid
        parent.kill()
        parent.wait()
        assert find((sys.executable, marker)) == child.pid  # the command line alone: the child
        assert svc.pid() is None  # but it is the dead daemon's child, still exiting
        assert svc.leftovers() == [child.pid]  # which a start waits for
    finally:
        for p in (parent, child):
            p.kill()
            p.wait()
