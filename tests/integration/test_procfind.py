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
