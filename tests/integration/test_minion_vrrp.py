"""The vrrp beacon against a real keepalived in a private network namespace (needs root).

The namespace holds a veth pair with 10.99.9.0/24; before it exists the root namespace gets the
guard route ``unreachable 10.99.9.0/24`` (LAB-NOTES.md), removed afterwards, so nothing can
route a lab address out of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
NET = "10.99.9.0/24"
VIP = "10.99.9.100"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not Path(KEEPALIVED).exists(), reason="keepalived not installed"),
]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth pair on 10.99.9.0/24, behind the root-namespace guard route."""
    name = f"hactl-it-{os.getpid()}"
    added_guard = _ip("route", "add", "unreachable", NET, check=False).returncode == 0
    route = (
        _ip("route", "get", "10.99.9.2", check=False).stdout
        + _ip("route", "get", "10.99.9.2", check=False).stderr
    )
    if "unreachable" not in route and "No route" not in route:
        pytest.fail(f"guard route for {NET} missing; refusing to create lab addresses: {route}")
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ip("-n", name, "addr", "add", "10.99.9.2/24", "dev", "v0")
        _ip("-n", name, "link", "set", "v1", "up")
        _ip("-n", name, "link", "set", "v0", "up")
        yield name
    finally:
        _ip("netns", "del", name, check=False)
        if added_guard:
            _ip("route", "del", "unreachable", NET, check=False)
        shutil.rmtree(f"/run/keepalived/{name}", ignore_errors=True)


def _keepalived_conf(d: Path, fifo: Path, notify_log: Path) -> Path:
    script = d / "notify.sh"
    # The notify script logs when keepalived ran it, and also writes the line into the minion's
    # FIFO (bounded by `timeout`, so keepalived never blocks on a FIFO nobody reads), beside
    # keepalived's own notify_fifo line: either source is enough, duplicates change nothing.
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$(date +%s.%N) $1 $2 $3 $4" >> {notify_log}\n'
        f'timeout 1 sh -c \'echo "$1 \\"$2\\" $3 $4" > {fifo}\' _ "$@"\n'
    )
    script.chmod(0o700)
    conf = d / "keepalived.conf"
    conf.write_text(f"""global_defs {{
  router_id itk1
  script_user root
  enable_script_security
  vrrp_version 3
  notify_fifo {fifo}
}}
vrrp_instance VI_T {{
  state BACKUP
  interface v0
  virtual_router_id 77
  priority 150
  advert_int 0.2
  virtual_ipaddress {{ {VIP}/24 dev v0 }}
  notify {script}
}}
""")
    return conf


def _notify_time(log: Path, state: str) -> float | None:
    with contextlib.suppress(FileNotFoundError):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[3] == state:
                return float(parts[0])
    return None


async def _logged(log: Path, state: str, timeout: float = 5.0) -> float:
    """When the notify script logged ``state`` (waits, bounded, for the script to have run)."""
    deadline = time.monotonic() + timeout
    while (at := _notify_time(log, state)) is None:
        assert time.monotonic() < deadline, f"the notify script never logged {state}"
        await asyncio.sleep(0.02)
    return at


async def _next(
    events: asyncio.Queue[tuple[float, Event]], pred: object, timeout: float
) -> tuple[float, Event]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        got = await asyncio.wait_for(events.get(), max(left, 0.01))
        if pred(got[1]):  # type: ignore[operator]
            return got


async def test_vrrp_transitions_reach_the_bus(nats: NatsHandle, netns: str, tmp_path: Path) -> None:
    """keepalived BACKUP->MASTER and MASTER->STOP each reach the bus as one event (with prev)."""
    fifo, notify_log = tmp_path / "keepalived.fifo", tmp_path / "notify.log"
    conf = _keepalived_conf(tmp_path, fifo, notify_log)
    assert (
        subprocess.run(  # noqa: ASYNC221 - before the minion starts; nothing to block
            ["ip", "netns", "exec", netns, KEEPALIVED, "-t", "-f", str(conf)],
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode
        == 0
    )
    bus = await Bus.connect(nats.url, nats.auth(), name="test-vrrp")
    events: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()

    async def on_event(e: Event) -> None:
        await events.put((time.time(), e))

    stop = asyncio.Event()
    cfg = parse_config(
        f"""
id: itk1
resync_interval: 300
heartbeat_interval: 300
beacons:
  vrrp: {{fifo: {fifo}, netns: {netns}, interval: 1, instances: {{VI_T: {{vips: [{VIP}]}}}}}}
""",
        "test",
    )
    minion = Minion(cfg, nats.url, nats.auth())
    task = asyncio.create_task(minion.run(stop))
    keepalived: subprocess.Popen[bytes] | None = None
    try:
        await ensure_stream(bus, StreamSettings())
        await bus.subscribe("hactl/beacon/itk1/vrrp", on_event)
        first = await _next(events, lambda e: True, 15)
        assert first[1].data["items"]["VI_T"]["state"] == "UNKNOWN"
        keepalived = subprocess.Popen(  # noqa: ASYNC220 - spawns, never waits
            [
                KEEPALIVED,
                "-n",
                "-l",
                "-D",
                "-s",
                netns,
                "-f",
                str(conf),
                "-p",
                str(tmp_path / "k.pid"),
                "-r",
                str(tmp_path / "v.pid"),
                "-c",
                str(tmp_path / "c.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        got_at, master = await _next(
            events, lambda e: e.data["items"]["VI_T"]["state"] == "MASTER", 20
        )
        item = master.data["items"]["VI_T"]
        assert item["priority"] == 150
        assert {
            "item": "VI_T",
            "field": "state",
            "value": "MASTER",
            "prev": "BACKUP",
        } in master.data["changes"] or any(c["prev"] == "UNKNOWN" for c in master.data["changes"])
        # keepalived's own notify_fifo line may beat the script that logs the time: wait for it
        notified = await _logged(notify_log, "MASTER")
        # informative only (timings are measured in benchmarks/, never asserted in a test);
        # negative when the FIFO line arrived before the script ran
        print(f"vrrp MASTER: notify -> event on the bus in {(got_at - notified) * 1000:.1f} ms")
        # The VIP really is on v0 now; the poll that follows reports the agreement.
        if not item["vip_here"]:  # keepalived adds the VIP just after its notify
            item = (await _next(events, lambda e: e.data["items"]["VI_T"]["vip_here"], 5))[1].data[
                "items"
            ]["VI_T"]
        assert item["agreement"] == "ok"
        keepalived.terminate()
        await asyncio.to_thread(keepalived.wait, 15)  # never block the loop the minion runs on
        got_at, stopped = await _next(
            events, lambda e: e.data["items"]["VI_T"]["state"] in ("STOP", "BACKUP", "FAULT"), 10
        )
        assert {"item": "VI_T", "field": "state", "prev": "MASTER"}.items() <= next(
            c for c in stopped.data["changes"] if c["field"] == "state"
        ).items()
        notified = _notify_time(notify_log, stopped.data["items"]["VI_T"]["state"])
        if notified is not None:
            print(
                f"vrrp {stopped.data['items']['VI_T']['state']}: notify -> event in "
                f"{(got_at - notified) * 1000:.1f} ms"
            )
    finally:
        if keepalived is not None and keepalived.poll() is None:
            keepalived.kill()
            keepalived.wait(10)
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await bus.close()
