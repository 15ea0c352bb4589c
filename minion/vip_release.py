"""End the connections of a VIP the moment this node no longer holds it.

When a VIP leaves a node, the TCP connections accepted on it there cannot carry another byte:
the clients' packets now go to the new holder. But nothing tells the two ends. HAProxy keeps
its server side open, so the broker keeps a consumer that no client reads (an RPC server
reconnected elsewhere gets only half the requests; the rest wait in a dead socket), and the
client learns of it only from its own heartbeat -- 25-60 s for oslo.messaging (lab, issue 24:
a 32 s gap of RPC calls after a VIP moved and came back). So the minion listens to the
kernel's address events (netlink ``RTM_DELADDR``, no polling) and, when one of its VIPs goes
from this namespace, destroys every connected TCP socket whose local address is that VIP
(``ss -K``, the kernel's SOCK_DESTROY: an RST to the client, an error to HAProxy, which then
closes the server side, so the broker requeues what the dead consumer held). Listening
sockets are never touched. At start it sweeps once for the VIPs not here (a minion restarted
after the VIP left). The frame parser is pure.

minion.yaml ``vrrp.release_connections`` (default true) turns it off; the VIPs are those of
the ``vrrp`` beacon's instances.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from hactl.log import get_logger
from hactl.minion import ss
from hactl.minion.netlink import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_NEIGH,
    parse_addr_events,
    parse_neigh_events,
)

if TYPE_CHECKING:
    from hactl.minion.vip_follow import VipFollow

log = get_logger("hactl.minion")


def ss_argv(vip: str) -> list[str]:
    """``ss`` destroying every connected TCP socket whose local address is ``vip``."""
    return ["ss", "-K", "-H", "-t", "-n", "state", "connected", "src", ss.host(vip)]


class VipRelease:
    """Watches this namespace's addresses; ends a departed VIP's connections at once."""

    def __init__(
        self,
        vips: Iterable[str],
        local: Callable[[], Awaitable[set[str]]],
        follow: VipFollow | None = None,
        *,
        release: bool = True,
    ) -> None:
        self.vips = frozenset(str(ipaddress.ip_address(v)) for v in vips)
        self.local = local  # this namespace's addresses now (``ip -j addr``)
        #: this node's own clients moved with a VIP (vip_follow.py), on the same events
        self.follow = follow
        self.release_on = release  # vrrp.release_connections
        self.releases = 0
        self.ended = 0

    async def release(self, vip: str, why: str) -> int:
        """End ``vip``'s connected sockets; how many ``ss`` listed (bounded, never raises)."""
        out = await ss.run(ss_argv(vip), "vip_release_failed", vip=vip)
        if out is None:
            return 0
        ended = ss.lines(out)
        self.releases += 1
        self.ended += ended
        log.info("vip_connections_ended", vip=vip, why=why, connections=ended)
        return ended

    async def sweep(self, why: str) -> None:
        """Release every VIP that is not here now."""
        try:
            here = await self.local()
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("vip_release_failed", error=f"ip addr: {exc}")
            return
        for vip in sorted(self.vips - here):
            await self.release(vip, why)

    async def run(self) -> None:
        """Subscribe to the kernel's address events, sweep once, then follow the events."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
        if self.follow is not None:
            groups |= RTMGRP_NEIGH
        try:
            sock.bind((0, groups))
            sock.setblocking(False)
            if self.release_on:  # subscribed first: no removal falls between
                await self.sweep("absent at start")
            loop = asyncio.get_running_loop()
            while True:
                try:
                    data = await loop.sock_recv(sock, 65536)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    if self.release_on:  # events were lost: read the truth
                        await self.sweep("netlink overflow")
                    continue
                at = time.monotonic()
                for event in parse_addr_events(data):
                    if event.address not in self.vips:
                        continue
                    if not event.new:
                        if self.release_on:
                            await self.release(event.address, "address removed")
                    elif self.follow is not None:
                        await self.follow.arrived(event.address, at)
                if self.follow is not None:
                    for neigh in parse_neigh_events(data):
                        await self.follow.neighbour(neigh, at)
        finally:
            sock.close()
