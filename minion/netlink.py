"""rtnetlink, parsed without a kernel: the address and neighbour events the minion follows
(vip_release.py, vip_follow.py). Pure functions over one datagram; a truncated or corrupt frame
ends it, other message types are skipped."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTM_NEWADDR = 20
RTM_DELADDR = 21
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")  # len, type


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
            attrs = attributes(data, off + _NLMSG.size + _IFADDR.size, off + length)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            width = {socket.AF_INET: 4, socket.AF_INET6: 16}.get(family)
            if raw is not None and width is not None and len(raw) == width:
                yield AddrEvent(kind == RTM_NEWADDR, str(ipaddress.ip_address(raw)))
        off += _align(length)


def attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """The route attributes (type -> payload, first wins) between ``start`` and ``end``."""
    attrs: dict[int, bytes] = {}
    off = start
    while off + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, off)
        if length < _RTA.size or off + length > end:
            break
        attrs.setdefault(kind, data[off + _RTA.size : off + length])
        off += _align(length)
    return attrs


RTM_NEWNEIGH = 28
RTMGRP_NEIGH = 0x4
NDA_DST = 1
NDA_LLADDR = 2
_NDMSG = struct.Struct("=BBHiHBB")  # family, pad, pad, ifindex, state, flags, type
NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20


@dataclass(frozen=True, slots=True)
class NeighEvent:
    """A neighbour entry that names a link-layer address for ``address``."""

    address: str
    lladdr: str


def parse_neigh_events(data: bytes) -> Iterator[NeighEvent]:
    """The resolved neighbour entries (``RTM_NEWNEIGH`` with an address and a link-layer
    address, not incomplete or failed) in one netlink datagram; other messages are skipped."""
    off = 0
    while off + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size or off + length > len(data):
            return
        body = off + _NLMSG.size
        if kind == RTM_NEWNEIGH and length >= _NLMSG.size + _NDMSG.size:
            family, _, _, _, state, _, _ = _NDMSG.unpack_from(data, body)
            attrs = attributes(data, body + _NDMSG.size, off + length)
            dst, ll = attrs.get(NDA_DST), attrs.get(NDA_LLADDR)
            width = {socket.AF_INET: 4, socket.AF_INET6: 16}.get(family)
            if (
                dst is not None
                and ll
                and width == len(dst)
                and not state & (NUD_INCOMPLETE | NUD_FAILED)
            ):
                yield NeighEvent(str(ipaddress.ip_address(dst)), ll.hex(":"))
        off += _align(length)
