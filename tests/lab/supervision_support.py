"""What the supervision lab tests share: a daemon killed and waited back, the minion's own
account of its supervision (its log), the stored given-up alerts, a command to a minion, and
the running copies of a daemon found by what it is."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hactl.bus import EVENTS_STREAM, Bus
from hactl.lab import lab as L
from hactl.lab.net import ip
from hactl.minion.config import parse_config
from hactl.minion.executors.base import ServiceCommands
from hactl.minion.procfind import matches
from hactl.wire.envelope import Event
from tests.lab.helpers import server_status, wait_until


def kill_and_wait_back(lab: L.Lab, node: str, component: str, timeout: float = 20) -> float:
    """kill -9 the daemon; seconds until a new process runs (and HAProxy answers)."""
    pid = lab.daemon_pid(node, component)
    assert pid, f"{component} runs on {node}"
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def back() -> bool:
        new = lab.daemon_pid(node, component)
        if not new or new == pid:
            return False
        return component != "haproxy" or bool(server_status(lab, node))

    try:
        return wait_until(back, timeout, f"{component} on {node} started again") - t0
    except AssertionError as exc:
        log = (lab.node_dir(node) / "minion.log").read_text(errors="replace").splitlines()
        said = [line[:240] for line in log if '"service_' in line][-12:]
        raise AssertionError(f"{exc}\n" + "\n".join(said)) from None


def log_lines(lab: L.Lab, node: str) -> list[str]:
    return (lab.node_dir(node) / "minion.log").read_text(errors="replace").splitlines()


def given_up(lab: L.Lab, node: str, start: int, wait: float = 35.0) -> bool:
    """True once the node's minion logged (after line ``start``) that it gave HAProxy up;
    False once it restarted it instead. ``wait`` covers the supervisor's backoff before that
    restart (1, 2, 4 ... s, at most 30 s: a fresh-clone run saw HAProxy started again only
    after the 3 s this waited once); it returns at whichever comes first."""
    log = lab.node_dir(node) / "minion.log"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines()[start:]
        if any('"service_given_up"' in ln and '"haproxy"' in ln for ln in lines):
            return True
        if any('"service_restarted"' in ln and '"haproxy"' in ln for ln in lines):
            return False
        time.sleep(0.1)
    return False


def alerts(lab: L.Lab, minutes: float = 3.0) -> list[dict[str, object]]:
    """Stored ``hactl/event/alert/service-given-up`` events, read in-process from the stream
    (a CLI tail killed by a timeout loses what it had not printed on a loaded machine)."""

    async def read() -> list[dict[str, object]]:
        bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="test-alerts", timeout=5)
        found: list[dict[str, object]] = []

        async def on_event(e: Event) -> None:
            if e.tag == "hactl/event/alert/service-given-up":
                found.append(dict(e.data))

        try:
            since = datetime.now(UTC) - timedelta(minutes=minutes)
            await bus.replay("hactl/event/alert/**", since, on_event, EVENTS_STREAM)
        finally:
            await bus.close()
        return found

    return asyncio.run(read())


async def ask(lab: L.Lab, node: str, cmd: str, args: dict[str, object]) -> bool:
    bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="test-supervision", timeout=5)
    try:
        reply = await bus.request(node, cmd, args, timeout=20)
        return reply.ok and bool(reply.result.get("result"))
    finally:
        await bus.close()


def service(lab: L.Lab, node: str, name: str) -> ServiceCommands:
    """The service as ``node``'s minion knows it (its own minion.yaml)."""
    path = lab.node_dir(node) / "minion.yaml"
    return parse_config(path.read_text(), str(path)).services[name]


def copies(lab: L.Lab, svc: ServiceCommands, node: str) -> list[int]:
    """Every running copy of the daemon in ``node``'s namespace: processes its command line
    names whose parent is not one (keepalived's VRRP and checker children are part of their
    parent's copy)."""
    pids = []
    here = set(ip("netns", "pids", lab.net.ns(node), check=False).stdout.split())
    for entry in Path("/proc").iterdir():
        if entry.name not in here:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if stat[0] != "Z" and matches(argv, svc.process):
            pids.append((int(entry.name), int(stat[1])))
    mine = {pid for pid, _ in pids}
    return sorted(pid for pid, parent in pids if parent not in mine)


def minion_log_events(lab: L.Lab, node: str, service: str) -> list[str]:
    """The supervision events of ``service`` in ``node``'s minion log, in order."""
    out = []
    for line in (lab.node_dir(node) / "minion.log").read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("service") == service and str(rec.get("event", "")).startswith(
            ("service_", "supervision_")
        ):
            out.append(str(rec["event"]))
    return out
