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
import struct
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from hactl.log import get_logger

log = get_logger("hactl.minion")

RTM_NEWADDR = 20
RTM_DELADDR = 21
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")  # len, type
SS_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class AddrEvent:
    """One address added (``new``) or removed in this namespace."""

    new: bool
    address: str


def _align(n: int) -> int:
    return (n + 3) & ~3


def parse_addr_events(data: bytes) -> Iterator[AddrEvent]:
    """The address events in one netlink datagram (other message types are skipped)."""
    off = 0
    while off + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size or off + length > len(data):
            return  # a truncated or corrupt frame ends the datagram
        if kind in (RTM_NEWADDR, RTM_DELADDR) and length >= _NLMSG.size + _IFADDR.size:
            family = _IFADDR.unpack_from(data, off + _NLMSG.size)[0]
            attrs = _attributes(data, off + _NLMSG.size + _IFADDR.size, off + length)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            width = {socket.AF_INET: 4, socket.AF_INET6: 16}.get(family)
            if raw is not None and width is not None and len(raw) == width:
                yield AddrEvent(kind == RTM_NEWADDR, str(ipaddress.ip_address(raw)))
        off += _align(length)


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    off = start
    while off + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, off)
        if length < _RTA.size or off + length > end:
            break
        attrs.setdefault(kind, data[off + _RTA.size : off + length])
        off += _align(length)
    return attrs


def ss_argv(vip: str) -> list[str]:
    """``ss`` destroying every connected TCP socket whose local address is ``vip``."""
    host = f"[{vip}]" if ipaddress.ip_address(vip).version == 6 else vip
    return ["ss", "-K", "-H", "-t", "-n", "state", "connected", "src", host]


class VipRelease:
    """Watches this namespace's addresses; ends a departed VIP's connections at once."""

    def __init__(self, vips: Iterable[str], local: Callable[[], Awaitable[set[str]]]) -> None:
        self.vips = frozenset(str(ipaddress.ip_address(v)) for v in vips)
        self.local = local  # this namespace's addresses now (``ip -j addr``)
        self.releases = 0
        self.ended = 0

    async def release(self, vip: str, why: str) -> int:
        """End ``vip``'s connected sockets; how many ``ss`` listed (bounded, never raises)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *ss_argv(vip),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), SS_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.warning("vip_release_failed", vip=vip, error=str(exc))
            return 0
        if proc.returncode != 0:
            log.warning("vip_release_failed", vip=vip, error=err.decode(errors="replace")[-300:])
            return 0
        ended = sum(1 for line in out.decode(errors="replace").splitlines() if line.strip())
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
        try:
            sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            await self.sweep("absent at start")  # subscribed first: no removal falls between
            loop = asyncio.get_running_loop()
            while True:
                try:
                    data = await loop.sock_recv(sock, 65536)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    await self.sweep("netlink overflow")  # events were lost: read the truth
                    continue
                for event in parse_addr_events(data):
                    if event.address in self.vips and not event.new:
                        await self.release(event.address, "address removed")
        finally:
            sock.close()
