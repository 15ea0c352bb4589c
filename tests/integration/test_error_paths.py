"""Every CLI command that talks to the bus, with NATS stopped and with no master: one line on
stderr, exit 2 (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import NatsHandle
from tests.integration.daemons import free_port
from tests.integration.procs import clean_env, run_cli

BUS_COMMANDS = [
    ["ping"],
    ["ping", "ctl1"],
    ["stats"],
    ["status"],
    ["fire", "hactl/event/error-path", "a=1"],
    ["events", "tail", "--count", "1"],
    ["events", "tail", "--since", "1m", "--count", "1"],
    ["maint", "list"],
    ["maint", "on", "ctl1", "--reason", "x"],
    ["maint", "off", "ctl1"],
]
#: with NATS up but no master: the commands only a master answers say so (`status` reads the
#: view a master left in KV, which another test's master may have written: not listed)
NEEDS_A_MASTER = [["ping"], ["stats"]]


def _one_line_exit_2(args: list[str], env: dict[str, str]) -> None:
    res = run_cli(args, env=env, timeout=60)
    assert res.returncode == 2, (args, res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hactl: error: "), (args, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.parametrize("args", BUS_COMMANDS, ids=[" ".join(a) for a in BUS_COMMANDS])
def test_nats_stopped(args: list[str], nats: NatsHandle) -> None:
    """NATS not listening: one line naming the URL, exit 2."""
    env = clean_env(**nats.env("admin"), HACTL_NATS=f"nats://127.0.0.1:{free_port()}")
    _one_line_exit_2(["--connect-timeout", "1", *args], env)


@pytest.mark.parametrize("args", NEEDS_A_MASTER, ids=[" ".join(a) for a in NEEDS_A_MASTER])
def test_no_master(args: list[str], nats: NatsHandle, tmp_path: Path) -> None:
    """NATS up, no master: one line saying nobody answers."""
    env = clean_env(**nats.env("admin"), HACTL_NATS=nats.url)
    _one_line_exit_2(["--data-dir", str(tmp_path), *args], env)
