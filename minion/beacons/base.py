"""The beacon contract and the diff that turns successive snapshots into change events.

A beacon's :meth:`Beacon.poll` returns a :data:`Snapshot`: items keyed by a stable id (a VRRP
instance, ``backend/server``, an endpoint), each a map of fields. Only the beacon's
``significant`` fields decide whether something changed (HAProxy's session counters move all
the time; its server status does not); every field is carried in the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Item = dict[str, Any]
Snapshot = dict[str, Item]


@dataclass(frozen=True, slots=True)
class BeaconContext:
    """What a beacon is given: who it runs for and its own options from minion.yaml."""

    minion_id: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: why planned work holds a service right now ('' when none: minion/planned.py); a
    #: beacon never calls a service stuck while hactl itself stops or restarts it
    held: Callable[[str], str] = field(default=lambda _service: "")


class Beacon(Protocol):
    """A watcher. ``wakeup`` (optional) lets an event source trigger an immediate poll."""

    name: str
    interval: float
    significant: frozenset[str]

    async def poll(self) -> Snapshot:
        """The current state; must not raise for an absent daemon (report it instead)."""
        ...

    async def close(self) -> None:
        """Release files, sockets and tasks."""
        ...


@dataclass(frozen=True, slots=True)
class Change:
    """One significant field of one item that differs from the previous snapshot."""

    item: str
    field: str
    value: Any
    prev: Any

    def as_dict(self) -> dict[str, Any]:
        """Wire form."""
        return {"item": self.item, "field": self.field, "value": self.value, "prev": self.prev}


def diff(prev: Snapshot | None, cur: Snapshot, significant: frozenset[str]) -> list[Change]:
    """Significant changes from ``prev`` to ``cur``; an item appearing or vanishing is one."""
    if prev is None:
        return []
    changes: list[Change] = []
    for key in sorted(set(prev) | set(cur)):
        before, after = prev.get(key), cur.get(key)
        if before is None or after is None:
            changes.append(Change(key, "present", after is not None, before is not None))
            continue
        for name in sorted(significant):
            if before.get(name) != after.get(name):
                changes.append(Change(key, name, after.get(name), before.get(name)))
    return changes


def event_data(cur: Snapshot, changes: list[Change], *, resync: bool) -> dict[str, Any]:
    """The ``data`` of a beacon event: every item, what changed (with prev), and why sent."""
    return {
        "items": cur,
        "changes": [c.as_dict() for c in changes],
        "resync": resync,
    }


async def open_bounded(
    host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
    """A TCP connection (a verified TLS one with ``tls``) within ``timeout``, connect and
    handshake both, or the reason it failed (probes never raise)."""
    try:
        opening = asyncio.open_connection(
            host, port, ssl=tls, ssl_handshake_timeout=timeout if tls else None
        )
        return await asyncio.wait_for(opening, timeout)
    except (OSError, TimeoutError) as exc:
        return f"connect: {type(exc).__name__}: {exc}".strip()


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a probe's connection; the peer going away first is not an error."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
