"""The shipped units start as shipped: the master's and a minion's ExecStart, run the way
systemd runs them (the unit's user -- the master's a DynamicUser --, its environment, its
LoadCredential= credentials directory, a NOTIFY_SOCKET), read their identity, connect to a
site's NATS and send READY=1. The old layout (the key's path in HACTL_CREDS, root's 0700
folder) is shown failing the same way the shipped unit failed (issue 25)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from tests.integration.conftest import NatsHandle
from tests.support import systemd_unit

pytestmark = pytest.mark.integration

UNITS = Path(__file__).resolve().parents[2] / "hactl" / "data" / "systemd"
HACTL = str(Path(sys.executable).parent / "hactl")


def _etc(tmp: Path, nats: NatsHandle, node: str) -> Path:
    """``/etc/hactl`` as docs/deploy.md leaves it: auth 0700 and keys 0600, root's."""
    etc = tmp / "etc" / "hactl"
    auth = etc / "auth"
    (auth / "creds").mkdir(parents=True)
    for name in ("master", node):
        shutil.copyfile(nats.auth_dir / "creds" / f"{name}.nk", auth / "creds" / f"{name}.nk")
        os.chmod(auth / "creds" / f"{name}.nk", 0o600)
    shutil.copyfile(nats.auth_dir / "ca.crt", auth / "ca.crt")
    os.chmod(auth / "creds", 0o700)
    os.chmod(auth, 0o700)
    (etc / "minion.yaml").write_text(f"id: {node}\nheartbeat_interval: 1\nbeacons: {{}}\n")
    return etc


@contextlib.asynccontextmanager
async def _site_nats(tmp: Path, nats: NatsHandle) -> AsyncIterator[dict[str, str]]:
    """A site's NATS; what /etc/default/hactl-{master,minion} says about it."""
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    try:
        yield {"HACTL_NATS": url, "HACTL_TLS_HANDSHAKE_FIRST": str(int(server.handshake_first))}
    finally:
        await asyncio.to_thread(server.stop)


def _paths(tmp: Path) -> dict[str, str]:
    return {
        "/usr/local/bin/hactl": HACTL,
        "/etc/hactl": str(tmp / "etc" / "hactl"),
        "/var/lib/hactl": str(tmp / "var" / "lib" / "hactl"),
    }


@pytest.fixture
def root() -> Iterator[Path]:
    """The units' file system (``/etc``, ``/var/lib``, ``/run``), in a folder others may
    traverse as on a real host (pytest's own tmp is root's 0700), removed after."""
    top = Path(tempfile.mkdtemp(prefix="hactl-units-"))
    os.chmod(top, 0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def dynamic_user_ok() -> None:
    """The master's unit runs as a dynamic user: skipped (with the reason) where this
    checkout is out of an unprivileged user's reach, or not root."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a unit as its user")
    if why := systemd_unit.reachable_as_dynamic_user(sys.executable):
        pytest.skip(f"this checkout is out of an unprivileged user's reach: {why}")


async def test_master_and_minion_units_start_as_shipped(
    root: Path, nats: NatsHandle, dynamic_user_ok: None
) -> None:
    """Both ExecStarts, as their units' users with the units' credentials: READY=1 each."""
    _etc(root, nats, "ctl1")
    async with _site_nats(root, nats) as site:
        master_unit = systemd_unit.parse(UNITS / "hactl-master.service", "ctl1")
        minion_unit = systemd_unit.parse(UNITS / "hactl-minion.service", "ctl1")
        assert master_unit.dynamic_user and not minion_unit.dynamic_user
        assert ("nats.nk", "/etc/hactl/auth/creds/master.nk") in master_unit.credentials
        master = systemd_unit.start(master_unit, root / "m", _paths(root), site)
        minion = systemd_unit.start(minion_unit, root / "n", _paths(root), site)
        try:
            said_master = await asyncio.to_thread(master.ready, 60)
            said_minion = await asyncio.to_thread(minion.ready, 60)
        finally:
            err_master, err_minion = master.stop(), minion.stop()
        assert "READY=1" in said_master, err_master[-3000:]
        assert "READY=1" in said_minion, err_minion[-3000:]
        assert master.proc.returncode == 0 and minion.proc.returncode == 0


async def test_the_old_layout_cannot_start_the_master(
    root: Path, nats: NatsHandle, dynamic_user_ok: None
) -> None:
    """As shipped before: HACTL_CREDS pointing into root's 0700 folder, no credentials: the
    dynamic user cannot read its key; the master exits 2 with one line, never READY."""
    _etc(root, nats, "ctl1")
    async with _site_nats(root, nats) as site:
        unit = systemd_unit.parse(UNITS / "hactl-master.service", "ctl1")
        unit.credentials = []
        unit.environment["HACTL_CREDS"] = "/etc/hactl/auth/creds/master.nk"
        unit.environment["HACTL_TLS_CA"] = "/etc/hactl/auth/ca.crt"
        master = systemd_unit.start(unit, root / "m", _paths(root), site)
        try:
            said = await asyncio.to_thread(master.ready, 30)
        finally:
            err = master.stop()
        assert "READY=1" not in said
        assert master.proc.returncode == 2, err[-2000:]
        assert "master.nk" in err and "ermission" in err, err[-2000:]
