"""The ``haproxy`` beacon: every backend and server from the admin socket's ``show stat``.

Options: ``socket`` (admin stats socket path, required), ``interval`` (default 1 s).
Transitional statuses (``UP 1/2`` while a server is failing its checks) are folded into the
settled one, so a server going down yields one change (UP -> DOWN), not two; so is the reason
HAProxy appends (``DRAIN (agent)``, ``MAINT (via)``, ``DOWN (agent)``): rules compare ``status``
with one word, ``raw_status`` keeps what HAProxy said.

``admin`` is the administrative state an operator or the master's reconciler set, from ``show
servers state`` (``srv_admin_state`` flags): ``maint`` (forced maintenance), ``drain`` (forced
drain), ``ready`` (neither), ``disabled`` (``disabled`` in the configuration: the reconciler
leaves it alone). ``status`` alone cannot say it: a drained server that fails its checks shows
``DOWN``, and the health agent's ``down`` is not an administrative state.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from hactl.minion.admin_socket import admin_command
from hactl.minion.beacons.base import BeaconContext, Item, Snapshot

_SETTLED = re.compile(
    r"^(UP|DOWN|NOLB|MAINT|DRAIN)(?:\s+\((?:agent|via|resolution)\))?(?:\s+\d+/\d+)?$"
)
DAEMON_ITEM = "_haproxy"


def normalize_status(raw: str) -> str:
    """The settled state: ``UP 1/2`` -> ``UP``, ``DRAIN (agent)`` -> ``DRAIN``, ``MAINT (via)``
    -> ``MAINT``; anything else (``no check``) unchanged. ``raw_status`` keeps the detail."""
    m = _SETTLED.match(raw.strip())
    return m.group(1) if m else raw.strip()


# srv_admin_state flags (HAProxy's enum srv_admin, checked against haproxy 2.6 in the lab)
_FMAINT, _CMAINT, _FDRAIN = 0x01, 0x04, 0x08


def admin_word(flags: int) -> str:
    """``srv_admin_state`` -> ``maint`` / ``drain`` / ``ready`` / ``disabled``."""
    if flags & _CMAINT:
        return "disabled"
    if flags & _FMAINT:
        return "maint"
    return "drain" if flags & _FDRAIN else "ready"


def parse_servers_state(text: str) -> dict[str, str]:
    """``show servers state`` -> ``backend/server`` -> :func:`admin_word`."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = next((ln for ln in lines if ln.startswith("# ")), "")
    names = header[2:].split()
    if "be_name" not in names or "srv_admin_state" not in names:
        raise ValueError("not a show servers state answer: " + (lines[0][:80] if lines else ""))
    be, srv, adm = (names.index(k) for k in ("be_name", "srv_name", "srv_admin_state"))
    out: dict[str, str] = {}
    for line in lines:
        fields = line.split()
        if line.startswith("#") or len(fields) < len(names):
            continue
        flags = _int(fields[adm])
        if flags is not None:
            out[f"{fields[be]}/{fields[srv]}"] = admin_word(flags)
    return out


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_show_stat(text: str) -> Snapshot:
    """Parse ``show stat`` CSV into items ``backend/server`` and ``backend/BACKEND``."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError("not a show stat answer: " + (lines[0][:80] if lines else "empty"))
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    items: Snapshot = {}
    for row in reader:
        proxy, server = row.get("pxname") or "", row.get("svname") or ""
        if not proxy or server == "FRONTEND":
            continue
        item: Item = {
            "backend": proxy,
            "server": server,
            "status": normalize_status(row.get("status", "")),
            "raw_status": row.get("status", ""),
            # A BACKEND row's weight is the sum of its servers': derived, so not "weight".
            "weight": _int(row.get("weight", "")) if server != "BACKEND" else None,
            "total_weight": _int(row.get("weight", "")) if server == "BACKEND" else None,
            "scur": _int(row.get("scur", "")) or 0,
            "check_status": row.get("check_status", ""),
            "active": row.get("act") == "1",
            "backup": row.get("bck") == "1",
            "chkfail": _int(row.get("chkfail", "")),
            "lastchg": _int(row.get("lastchg", "")),
            "addr": row.get("addr", ""),
        }
        items[f"{proxy}/{server}"] = item
    return items


class HaproxyBeacon:
    """Polls ``show stat`` on the admin socket."""

    name = "haproxy"
    significant = frozenset({"status", "admin", "weight", "present", "running"})

    def __init__(self, ctx: BeaconContext) -> None:
        self.socket = str(ctx.options["socket"])
        self.interval = float(ctx.options["interval"])

    async def poll(self) -> Snapshot:
        """Current backends and servers, or a ``_haproxy`` item saying why there are none."""
        try:
            items = parse_show_stat(await admin_command(self.socket, "show stat"))
        except (OSError, TimeoutError, ValueError) as exc:
            detail: Any = f"{type(exc).__name__}: {exc}"
            return {DAEMON_ITEM: {"running": False, "error": detail}}
        try:
            admin = parse_servers_state(await admin_command(self.socket, "show servers state"))
        except (OSError, TimeoutError, ValueError):
            admin = {}  # the statuses still count; the reconciler waits for the next poll
        for name, item in items.items():
            if item["server"] != "BACKEND":
                item["admin"] = admin.get(name)
        items[DAEMON_ITEM] = {"running": True, "error": ""}
        return items

    async def close(self) -> None:
        """Nothing to release: one connection per poll."""
