"""systemd's notify protocol: the datagram reaches NOTIFY_SOCKET; the watchdog period."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hactl.sdnotify import notify, watchdog_period


def test_notify_sends_to_the_socket_and_is_silent_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY=1 and STATUS arrive as one datagram; without NOTIFY_SOCKET nothing is sent."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1", "STATUS=serving") is True
        assert srv.recv(512) == b"READY=1\nSTATUS=serving"


def test_watchdog_period_is_half_the_timeout_and_only_for_this_pid() -> None:
    """WatchdogSec=10 -> a ping every 5 s; another process's watchdog or none -> None."""
    assert watchdog_period({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period({}) is None and watchdog_period({"WATCHDOG_USEC": "x"}) is None


async def test_watchdog_pings_stop_while_the_loop_is_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG=1 arrives every half period from the event loop; while the loop is blocked
    (a hung daemon) no ping arrives, so systemd's WatchdogSec fires."""
    import asyncio
    import time

    from hactl.sdnotify import watchdog

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "100000")  # pings every 50 ms
        monkeypatch.delenv("WATCHDOG_PID", raising=False)

        def drain() -> int:
            n = 0
            while True:
                try:
                    assert srv.recv(64) == b"WATCHDOG=1"
                except BlockingIOError:
                    return n
                n += 1

        task = asyncio.create_task(watchdog())
        await asyncio.sleep(0.3)
        assert drain() >= 3
        time.sleep(0.4)  # noqa: ASYNC251 - blocking the loop on purpose: a hung daemon
        assert drain() == 0  # nothing: the loop could not run
        await asyncio.sleep(0.2)
        assert drain() >= 2  # unblocked: pings again
        task.cancel()
