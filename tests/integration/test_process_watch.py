"""The minion's process watch against a real, daemonized HAProxy: a kill -9 is flagged for
keepalived (a pidfd, not a poll); a reload (-sf) is not a death."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hactl.minion.executors.base import ServiceCommands
from hactl.minion.process_watch import ProcessWatch, read_flag
from tests.integration.daemons import HAPROXY, free_port, haproxy_config

pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy not installed")


def _start(cfg: Path, pidfile: Path, old: int | None = None) -> None:
    argv = [HAPROXY, "-D", "-f", str(cfg), "-p", str(pidfile)]
    subprocess.run([*argv, *(["-sf", str(old)] if old else [])], check=True, timeout=10)


async def _until(what: str, ok: object, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not ok():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def test_kill_is_flagged_at_once_and_a_reload_is_not(tmp_path: Path) -> None:
    """kill -9 of HAProxy: the flag keepalived tracks is 1 within a few ms of the death; the
    restarted HAProxy clears it; a reload (-sf old) never raises it; a clean stop clears it."""
    cfg, pidfile, flag = tmp_path / "h.cfg", tmp_path / "h.pid", tmp_path / "down_haproxy"
    cfg.write_text(haproxy_config(tmp_path / "h.sock", free_port(), {}))
    svc = ServiceCommands(pidfile=str(pidfile))
    changes: list[tuple[bool, float]] = []
    watch = ProcessWatch(
        "haproxy", svc, flag, on_change=lambda _n, down: changes.append((down, time.monotonic()))
    )
    _start(cfg, pidfile)
    task = asyncio.create_task(watch.run())
    try:
        await _until("flag cleared for a running HAProxy", lambda: watch.down is False)
        assert not read_flag(flag)
        pid = svc.pid()
        assert pid
        _start(cfg, pidfile, old=pid)  # a reload: a new process, the old one told to finish
        await _until("the old process gone", lambda: svc.pid() not in (None, pid))
        await asyncio.sleep(0.5)
        assert [d for d, _ in changes] == [False], f"a reload raised the flag: {changes}"
        new = svc.pid()
        assert new and new != pid
        os.kill(new, signal.SIGKILL)
        await _until("flag raised", lambda: read_flag(flag))
        assert watch.deaths == 1 and watch.down is True  # speed: benchmarks/failover.py
        _start(cfg, pidfile)
        await _until("flag cleared after a restart", lambda: not read_flag(flag))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watch.close()
        if (pid := svc.pid()) is not None:
            os.kill(pid, signal.SIGKILL)
    assert not read_flag(flag)
