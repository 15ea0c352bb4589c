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
