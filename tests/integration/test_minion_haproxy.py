"""The minion against a real HAProxy: change events, runtime commands and file.apply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.errors import CommandError
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from hactl.minion.executors import dispatch
from hactl.wire.commands import CommandRequest
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle
from tests.integration.daemons import (
    HAPROXY,
    Backend,
    Haproxy,
    free_port,
    haproxy_config,
    wait_servers,
)

pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy not installed")


@dataclass
class Rig:
    """A haproxy with two live backends and a running minion watching it."""

    sock: Path
    cfg: Path
    web: dict[str, Backend]
    minion: Minion
    events: asyncio.Queue[Event]
    bus: Bus


async def _until_serving(bus: Bus, target: str, timeout: float = 15.0) -> None:
    """Readiness from the minion itself: a test.ping answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            if (await bus.request(target, "test.ping", timeout=1.0)).ok:
                return
        except CommandError:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)


@pytest.fixture
async def rig(nats: NatsHandle, tmp_path: Path) -> AsyncIterator[Rig]:
    """Start backends, haproxy and a minion; stop all of them afterwards."""
    web = {"web1": Backend(), "web2": Backend()}
    sock = tmp_path / "admin.sock"
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "haproxy.cfg"
    cfg.write_text(haproxy_config(sock, free_port(), {n: b.port for n, b in web.items()}))
    proxy = Haproxy(cfg)
    bus = await Bus.connect(nats.url, nats.auth(), name="test-minion-haproxy")
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await ensure_stream(bus, StreamSettings())
        await wait_servers(sock, {"be_api/web1": "UP", "be_api/web2": "UP"})
        events: asyncio.Queue[Event] = asyncio.Queue()

        async def on_event(e: Event) -> None:
            await events.put(e)

        await bus.subscribe("hactl/beacon/itm1/haproxy", on_event)
        conf = parse_config(
            f"""
id: itm1
resync_interval: 300
heartbeat_interval: 300
allowed_roots: [{etc}]
content_policy: {{read_dirs: [{tmp_path}]}}
haproxy_socket: {sock}
beacons:
  haproxy: {{socket: {sock}, interval: 0.1}}
""",
            "test",
        )
        minion = Minion(conf, nats.url, nats.auth())
        task = asyncio.create_task(minion.run(stop))
        await _until_serving(bus, "itm1")
        yield Rig(sock, cfg, web, minion, events, bus)
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await bus.close()
        proxy.stop()
        for b in web.values():
            with contextlib.suppress(Exception):
                b.stop()


async def test_backend_down_is_exactly_one_change_event(rig: Rig) -> None:
    """Stopping a backend yields one haproxy event naming the server and its prev status."""
    first = await asyncio.wait_for(rig.events.get(), 10)
    assert first.data["resync"] is True
    assert first.data["items"]["be_api/web2"]["status"] == "UP"
    rig.web["web2"].stop()
    await wait_servers(rig.sock, {"be_api/web2": "DOWN"})
    await asyncio.sleep(1.0)  # room for any further (wrong) events to arrive
    changes = []
    while not rig.events.empty():
        changes.append(rig.events.get_nowait())
    assert len(changes) == 1, [e.data["changes"] for e in changes]
    assert changes[0].data["changes"] == [
        {"item": "be_api/web2", "field": "status", "value": "DOWN", "prev": "UP"}
    ]
    assert changes[0].data["resync"] is False


async def test_runtime_drain_and_weight_through_the_bus(rig: Rig) -> None:
    """haproxy.runtime over NATS drains a server and sets a weight; the beacon reports both."""
    await asyncio.wait_for(rig.events.get(), 10)
    reply = await rig.bus.request(
        "itm1",
        "haproxy.runtime",
        {"verb": "set_state", "backend": "be_api", "server": "web1", "state": "drain"},
        timeout=10,
    )
    assert reply.ok and reply.result["result"] is True, reply
    await wait_servers(rig.sock, {"be_api/web1": "DRAIN"})
    ev = await asyncio.wait_for(rig.events.get(), 5)
    assert {"item": "be_api/web1", "field": "status", "value": "DRAIN", "prev": "UP"} in ev.data[
        "changes"
    ]
    reply = await rig.bus.request(
        "itm1",
        "haproxy.runtime",
        {"verb": "set_weight", "backend": "be_api", "server": "web2", "weight": 50},
        timeout=10,
    )
    assert reply.ok
    assert reply.result["result"] is True
    ev = await asyncio.wait_for(rig.events.get(), 5)
    assert {"item": "be_api/web2", "field": "weight", "value": 50, "prev": 1} in ev.data["changes"]
    bad = await rig.bus.request(
        "itm1",
        "haproxy.runtime",
        {"verb": "set_state", "backend": "be_api", "server": "web1\nshutdown", "state": "ready"},
    )
    assert not bad.ok
    assert bad.error_type == "CommandRefused"


async def test_file_apply_refuses_invalid_config_and_keeps_old_bytes(rig: Rig) -> None:
    """A config haproxy -c rejects leaves the old file byte-identical and returns the reason."""
    before = rig.cfg.read_bytes()
    broken = before.decode().replace("balance roundrobin", "balance no-such-algorithm")
    reply = await rig.bus.request(
        "itm1",
        "file.apply",
        {"path": str(rig.cfg), "content": broken, "check": "haproxy"},
        timeout=20,
    )
    assert reply.ok, reply
    assert reply.result["result"] is False
    assert "balance only supports" in reply.result["check_output"]
    assert str(rig.cfg) + ":" in reply.result["check_output"]  # staged name mapped back
    assert rig.cfg.read_bytes() == before
    assert not [p for p in rig.cfg.parent.iterdir() if p.name.endswith(".hactl")]
    fixed = before.decode().replace("timeout client 5s", "timeout client 6s")
    test_mode = await rig.bus.request(
        "itm1",
        "file.apply",
        {
            "path": str(rig.cfg),
            "content": fixed,
            "test": True,
            "check": "haproxy",
        },
        timeout=20,
    )
    assert test_mode.result["result"] is None
    assert "+  timeout client 6s" in test_mode.result["changes"]["diff"]
    assert rig.cfg.read_bytes() == before
    good = await rig.bus.request(
        "itm1",
        "file.apply",
        {"path": str(rig.cfg), "content": fixed, "check": "haproxy"},
        timeout=20,
    )
    assert good.result["result"] is True
    assert rig.cfg.read_text() == fixed
    assert Path(good.result["backup"]).read_bytes() == before
    again = await rig.bus.request("itm1", "file.apply", {"path": str(rig.cfg), "content": fixed})
    assert again.result["changes"] == {}


async def test_refusals(rig: Rig) -> None:
    """Outside the roots, an unknown command, a disallowed checker: refused, nothing done."""
    outside = await rig.bus.request("itm1", "file.apply", {"path": "/etc/passwd", "content": "x"})
    assert not outside.ok
    assert outside.error_type == "CommandRefused"
    assert "outside the allowed roots" in outside.error_message
    sneaky = await rig.bus.request(
        "itm1", "file.apply", {"path": str(rig.cfg.parent / ".." / "escape.cfg"), "content": "x"}
    )
    assert not sneaky.ok
    assert not (rig.cfg.parent.parent / "escape.cfg").exists()
    unknown = await rig.bus.request("itm1", "shell.run", {"cmd": "id"})
    assert not unknown.ok
    assert unknown.error_type == "UnknownCommand"
    checker = await rig.bus.request(
        "itm1",
        "file.apply",
        {"path": str(rig.cfg), "content": "x", "check": "sh"},
    )
    assert not checker.ok
    assert "not one of this minion's check commands" in checker.error_message
    argv = await rig.bus.request(  # the old form, an argv, is refused as a wrong type
        "itm1", "file.apply", {"path": str(rig.cfg), "content": "x", "check": ["sh", "-c", "id"]}
    )
    assert not argv.ok and argv.error_type == "CommandRefused"
    ping = await rig.bus.request("itm1", "test.ping")
    assert ping.ok
    assert ping.result["id"] == "itm1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cmd=st.sampled_from(["file.apply", "haproxy.runtime", "service.reload", "test.ping", "nope.x"]),
    args=st.dictionaries(
        st.sampled_from(
            [
                "path",
                "content",
                "mode",
                "verb",
                "backend",
                "server",
                "state",
                "weight",
                "name",
                "check",
                "x",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
def test_fuzzed_commands_never_crash(tmp_path: Path, cmd: str, args: dict[str, object]) -> None:
    """Random command payloads get a reply (refusal or result), never an exception."""
    conf = parse_config(
        f"id: fz1\nallowed_roots: [{tmp_path}]\nhaproxy_socket: {tmp_path}/none.sock\n", "fuzz"
    )
    reply = asyncio.run(dispatch(conf.exec_context(), CommandRequest(cmd=cmd, args=args)))
    assert reply.ok or reply.error_type in {"CommandRefused", "UnknownCommand", "OSError"}


@pytest.mark.parametrize("mode", ["4755", "2755", "1777", "6755"])
async def test_file_apply_refuses_setuid_setgid_sticky(rig: Rig, mode: str) -> None:
    """A setuid/setgid/sticky mode is refused and nothing is written."""
    target = rig.cfg.parent / f"suid-{mode}"
    reply = await rig.bus.request(
        "itm1", "file.apply", {"path": str(target), "content": "x", "mode": mode}, timeout=10
    )
    assert not reply.ok and reply.error_type == "CommandRefused", reply
    assert "setuid" in reply.error_message
    assert not target.exists()
