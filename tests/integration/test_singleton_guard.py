"""The singleton guard (minion/singleton_guard.py) with real processes: it stops the copy when
the lease file's instant passes -- SIGKILL when the copy ignores SIGTERM -- and leaves it alone
when the minion ends the copy itself (removes the file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hactl.minion.executors.base import ServiceCommands

pytestmark = pytest.mark.integration

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def _copy(tmp: Path, code: str = "import time; time.sleep(60)") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code])
    (tmp / "svc.pid").write_text(f"{proc.pid}\n")
    time.sleep(0.3)  # its signal handler is in place
    return proc


def _guard(tmp: Path, stop_at: float, grace: float = 1.0) -> subprocess.Popen[bytes]:
    (tmp / "x.stop_at").write_text(f"{stop_at:.3f}\n")
    cfg = {
        "name": "x",
        "stop_at_file": str(tmp / "x.stop_at"),
        "guard_pidfile": str(tmp / "x.guard.pid"),
        "fenced_file": str(tmp / "x.fenced"),
        "pidfile": str(tmp / "svc.pid"),
        "stop": [],
        "unit": "",
        "grace": grace,
    }
    (tmp / "x.guard.json").write_text(json.dumps(cfg))
    return subprocess.Popen(
        [sys.executable, "-m", "hactl.minion.singleton_guard", str(tmp / "x.guard.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_the_guard_stops_the_copy_when_the_lease_runs_out(tmp_path: Path) -> None:
    """Nobody rewrites the lease file (a hung minion): the copy is stopped at the instant,
    the fence is recorded and the guard exits."""
    copy = _copy(tmp_path)
    guard = _guard(tmp_path, time.monotonic() + 1.0)
    try:
        code = copy.wait(timeout=5)
        assert code != 0  # SIGTERM
        out = guard.communicate(timeout=5)[0].decode()
        assert "fenced" in out and (tmp_path / "x.fenced").exists()
    finally:
        for p in (copy, guard):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_copy_that_ignores_sigterm_is_killed_within_the_grace(tmp_path: Path) -> None:
    """A copy that ignores SIGTERM (hung in its handler, or written that way) is SIGKILLed
    after half the grace: it cannot outlive its lease by more than that."""
    copy = _copy(tmp_path, IGNORE_TERM)
    t0 = time.monotonic()
    guard = _guard(tmp_path, t0 + 0.5, grace=1.0)
    try:
        copy.wait(timeout=5)
        assert copy.returncode == -9
        assert time.monotonic() - t0 < 3.0
        assert "SIGKILL" in guard.communicate(timeout=5)[0].decode()
    finally:
        for p in (copy, guard):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_the_guard_leaves_when_the_minion_ends_the_copy(tmp_path: Path) -> None:
    """The lease file removed (the minion stopped the copy itself): the guard exits and
    touches nothing."""
    copy = _copy(tmp_path)
    guard = _guard(tmp_path, time.monotonic() + 30)
    try:
        time.sleep(0.3)
        (tmp_path / "x.stop_at").unlink()
        guard.wait(timeout=3)
        assert copy.poll() is None and not (tmp_path / "x.fenced").exists()
        assert ServiceCommands(pidfile=str(tmp_path / "svc.pid")).pid() == copy.pid
    finally:
        copy.kill()
        copy.wait()
        if guard.poll() is None:
            guard.kill()
            guard.wait()
    assert os.path.exists(tmp_path / "x.guard.pid")
