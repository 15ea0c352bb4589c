"""The ``vrrp`` beacon: keepalived instance states, cross-checked with the VIPs really present.

keepalived writes ``INSTANCE "VI_1" MASTER 150`` lines to a notify FIFO (``notify_fifo`` in
``global_defs``); the beacon reads it without polling and wakes its runner at once, so a
transition is on the bus within milliseconds. Each poll also reads the local addresses
(``ip -j addr``) and reports a disagreement explicitly: BACKUP/FAULT with the VIP here (a stale
VIP, as after ``kill -9 keepalived``) or MASTER without it.

Options: ``fifo`` (path, created if missing), ``instances`` ({name: {vips: [addr, ...]}}),
``interval`` (default 1 s), ``netns`` (read addresses of this named network namespace instead
of the minion's own; for a minion watching a lab node from outside), ``track_dir`` (where the
minion's ``vrrp.yield`` files live, from minion.yaml's ``vrrp`` section: each instance then
also reports ``yielded``, whether the file keepalived tracks for it asks it to give up its VIP),
``pidfile`` (keepalived's: while an instance's state is unknown -- a minion started after
keepalived hears no transition -- keepalived is asked for its JSON dump, keepalived_state.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any

from hactl.minion.beacons import keepalived_state
from hactl.minion.beacons.base import BeaconContext, Snapshot
from hactl.minion.garp import ip_addr_json
from hactl.schema import SchemaError
from hactl.wire.vrrp import track_file

ASK_EVERY = 5.0  # s between two questions to keepalived while a state is unknown
_LINE = re.compile(
    r'^(INSTANCE|GROUP)\s+"?([^"\s]+)"?\s+'
    r"(MASTER|BACKUP|FAULT|STOP|DELETED|MASTER_RX_LOWER_PRI|MASTER_PRIORITY|BACKUP_PRIORITY)"
    r"\s+(\d+)\s*$"
)


@dataclass(frozen=True, slots=True)
class Notify:
    """One parsed notify line."""

    kind: str
    name: str
    state: str
    priority: int


def parse_notify(line: str) -> Notify | None:
    """Parse a keepalived notify FIFO / notify script line; None if it is not one."""
    m = _LINE.match(line.strip())
    if not m:
        return None
    return Notify(m.group(1), m.group(2), m.group(3), int(m.group(4)))


def parse_ip_addr_json(text: str) -> set[str]:
    """Local addresses from ``ip -j addr`` output."""
    addrs: set[str] = set()
    for link in json.loads(text or "[]"):
        for info in link.get("addr_info", []):
            if "local" in info:
                addrs.add(str(info["local"]))
    return addrs


def agreement(state: str, vips: list[str], local: set[str]) -> str:
    """``ok``, or which way keepalived's state and the addresses disagree."""
    if not vips:
        return "ok"
    here = [v for v in vips if v in local]
    if state == "MASTER" and len(here) < len(vips):
        return "master_without_vip"
    if state in ("BACKUP", "FAULT", "STOP") and here:
        return "vip_without_master"
    return "ok"


def read_yield(track_dir: str, instance: str) -> bool:
    """Whether the yield file keepalived tracks for ``instance`` holds a non-zero value."""
    try:
        path = os.path.join(track_dir, track_file(instance))
        with open(path, "rb") as fh:
            text = fh.read(32).decode("ascii", "replace").strip()
    except (OSError, SchemaError):  # no file yet, or a name that cannot be one
        return False
    return text not in ("", "0")


async def local_addresses(timeout: float = 2.0, netns: str = "") -> set[str]:
    """This namespace's addresses (``ip -j addr``), or those of the named ``netns``."""
    return parse_ip_addr_json(await ip_addr_json(timeout, netns))


class VrrpBeacon:
    """Reads the notify FIFO continuously; polls addresses at ``interval``."""

    name = "vrrp"
    significant = frozenset({"state", "priority", "agreement", "vip_here", "present"})

    def __init__(self, ctx: BeaconContext) -> None:
        self.fifo = str(ctx.options["fifo"])
        self.interval = float(ctx.options["interval"])
        self.netns = str(ctx.options["netns"])
        self.track_dir = str(ctx.options["track_dir"])
        self.pidfile = str(ctx.options["pidfile"])
        self._asked = 0.0
        self.vips: dict[str, list[str]] = {
            str(name): [str(v).split("/")[0] for v in spec.get("vips", [])]
            for name, spec in dict(ctx.options["instances"]).items()
        }
        self.states: dict[str, dict[str, Any]] = {}
        self.wakeup = asyncio.Event()
        self._fd: int | None = None
        self._partial = b""

    def _open(self) -> None:
        if self._fd is not None:
            return
        try:
            mode = os.stat(self.fifo).st_mode
            if not stat.S_ISFIFO(mode):
                raise OSError(f"{self.fifo} exists and is not a FIFO")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.fifo) or ".", exist_ok=True)
            os.mkfifo(self.fifo, 0o600)
        # O_RDWR: we are also a writer, so the FIFO never reports EOF when keepalived restarts.
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            self.feed(raw.decode("utf-8", "replace"))

    def feed(self, line: str) -> None:
        """Take one notify line (from the FIFO, or a test)."""
        note = parse_notify(line)
        if note is None or note.kind != "INSTANCE":
            return
        # MASTER_RX_LOWER_PRI is an event, not a state: a MASTER heard a lower-priority master
        # (a split brain ending) and stays MASTER. Taken as a state it made a healthy holder
        # look unhealthy, and its API servers were drained after a heal (lab, issue 13).
        state = "MASTER" if note.state == "MASTER_RX_LOWER_PRI" else note.state
        # MASTER_PRIORITY / BACKUP_PRIORITY (global_defs vrrp_notify_priority_changes): the
        # effective priority changed without a state change -- a tracked check failed or rose
        # again. Without them a node that left FAULT while its check was still failing kept
        # reporting the reduced priority (BACKUP 1) for ever and its API servers stayed
        # drained after HAProxy was back (lab, baseline check after the given-up test).
        state = state.removesuffix("_PRIORITY")
        if note.state.endswith("_PRIORITY") and note.name in self.states:
            known = self.states[note.name]
            if known.get("state") == state and known.get("priority") == note.priority:
                return
            since = known.get("since") if known.get("state") == state else time.time()
            self.states[note.name] = {"state": state, "priority": note.priority, "since": since}
            self.wakeup.set()
            return
        self.states[note.name] = {
            "state": state,
            "priority": note.priority,
            "since": time.time(),
        }
        self.wakeup.set()

    async def poll(self) -> Snapshot:
        """Every known instance with its state, priority and whether its VIPs are here."""
        error = ""
        try:
            self._open()
        except OSError as exc:
            error = f"notify fifo: {exc}"
        unknown = [n for n in self.vips if n not in self.states]
        if unknown and self.pidfile and time.monotonic() - self._asked >= ASK_EVERY:
            await self._ask(unknown)
        try:
            local = await local_addresses(netns=self.netns)
        except (OSError, TimeoutError, ValueError) as exc:
            local, error = set(), error or f"ip addr: {exc}"
        snap: Snapshot = {}
        for name in sorted(set(self.vips) | set(self.states)):
            known = self.states.get(name, {"state": "UNKNOWN", "priority": None, "since": None})
            vips = self.vips.get(name, [])
            snap[name] = {
                **known,
                "vips": vips,
                "vip_here": bool(vips) and all(v in local for v in vips),
                "agreement": agreement(str(known["state"]), vips, local),
            }
            if self.track_dir:
                snap[name]["yielded"] = read_yield(self.track_dir, name)
        if error:
            snap["_keepalived"] = {"error": error}
        return snap

    async def _ask(self, unknown: list[str]) -> None:
        """Learn what the FIFO did not say from keepalived's JSON dump (keepalived_state)."""
        self._asked = time.monotonic()
        try:
            dump = await keepalived_state.ask(self.pidfile)
        except OSError:
            return
        for name in unknown:
            got = dump.get(name)
            if got is not None and name not in self.states:  # the FIFO, if it spoke, wins
                self.states[name] = {
                    "state": got.state,
                    "priority": got.priority,
                    "since": got.since,
                }

    async def close(self) -> None:
        """Stop reading the FIFO."""
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
