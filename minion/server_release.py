"""End this node's own clients of a server its HAProxy has just marked DOWN.

OpenStack services reach RabbitMQ without HAProxy: hactl renders every broker into their
``transport_url`` (docs/clients.md), so oslo.messaging holds long-lived connections straight
to each broker's address. HAProxy's ``on-marked-down shutdown-sessions`` cannot end those.
When a broker's node is cut off the network (carrier up, no reset ever sent), a connection
that waits -- an RPC server consuming, a caller's reply consumer -- hears nothing until kombu's
heartbeat sends into it (up to ``heartbeat_timeout_threshold`` after its last write) and the
kernel's retransmissions give up. The lab measured RPC gaps of 17.7-20.2 s in 3 of 6 runs of
a 30 s cut of the VIP holder (``benchmarks/silence.py``).

This node's HAProxy already checks every broker, from this node, every second. When it marks a
server of a listed backend (minion.yaml ``beacons.haproxy.release_down``) DOWN -- its checks
failed, evidence from this node's own vantage point, never an operator's or the reconciler's
MAINT or DRAIN -- the minion ends every established TCP socket from this namespace to that
server's address and port (``ss -K``, the kernel's SOCK_DESTROY). The clients get an error at
once and reconnect to another broker they list, within their reconnect delay. Nothing else is
touched: other addresses, other ports, listeners. A server that was already DOWN when the
minion started is left alone (no transition was seen). The parser is pure; the
``server_clients_released`` log line says what was ended.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from hactl.log import get_logger
from hactl.minion import ss
from hactl.minion.beacons.base import Snapshot

log = get_logger("hactl.minion")


@dataclass(frozen=True, slots=True)
class DownServer:
    """A server HAProxy has just marked DOWN: ``backend/server`` and where it listens."""

    key: str
    host: str
    port: int


def _address(text: str) -> tuple[str, int] | None:
    """``show stat``'s ``addr`` (``10.0.0.11:5672``, ``[fd00::1]:5672``) -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        return None


def went_down(
    previous: Snapshot | None, current: Snapshot, backends: Iterable[str]
) -> list[DownServer]:
    """The servers of ``backends`` whose status is DOWN now and was something else in
    ``previous`` (None: the first poll, nothing went down)."""
    if previous is None:
        return []
    wanted = frozenset(backends)
    out: list[DownServer] = []
    for key, item in current.items():
        if item.get("backend") not in wanted or item.get("server") == "BACKEND":
            continue
        before = previous.get(key)
        if item.get("status") != "DOWN" or before is None or before.get("status") == "DOWN":
            continue
        where = _address(str(item.get("addr") or ""))
        if where is not None:
            out.append(DownServer(key, *where))
    return out


def kill_argv(server: DownServer) -> list[str]:
    """``ss`` ending every established socket to exactly that address and port."""
    return [
        "ss",
        "-K",
        "-H",
        "-t",
        "-n",
        "state",
        "established",
        "dst",
        ss.host(server.host),
        "dport",
        "=",
        f":{server.port}",
    ]


class ServerRelease:
    """Ends this namespace's connections to servers of ``backends`` that went DOWN."""

    def __init__(self, backends: Iterable[str]) -> None:
        self.backends = frozenset(backends)
        self.releases = 0
        self.ended = 0

    async def observe(self, previous: Snapshot | None, current: Snapshot) -> int:
        """One HAProxy poll seen: end the connections to each server that just went DOWN;
        how many were ended (bounded by ``ss``'s timeout, never raises)."""
        ended = 0
        for server in went_down(previous, current, self.backends):
            out = await ss.run(kill_argv(server), "server_release_failed", server=server.key)
            n = ss.lines(out)
            ended += n
            self.releases += 1
            log.info(
                "server_clients_released",
                server=server.key,
                address=f"{server.host}:{server.port}",
                connections=n,
            )
        self.ended += ended
        return ended
