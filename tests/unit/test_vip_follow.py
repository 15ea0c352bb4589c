"""Clients moved with a VIP: neighbour events and ``ss -i`` parsed without a kernel, only the
sockets that heard nothing since the move chosen, each ended by its exact four-tuple."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from hactl.minion import netlink as nl
from hactl.minion import vip_follow as vf

# `ss -H -t -n -i state established dst 10.99.1.100` on a lab node (trimmed info lines)
SS = """\
0      0      10.99.1.12:41234 10.99.1.100:3306
\t cubic wscale:7,7 rto:204 rtt:0.1/0.05 lastsnd:31000 lastrcv:31000 lastack:30990 app_limited
0      0      10.99.1.12:41240 10.99.1.100:5672
\t cubic wscale:7,7 rto:204 rtt:0.1/0.05 lastsnd:12 lastrcv:12 lastack:12
0      36     10.99.1.12:41250 10.99.1.100:5672
\t cubic rto:1632 backoff:3 lastsnd:900 lastrcv:2500 lastack:2500 unacked:1
0      0      [fd00::12]:50000 [fd00::64]:3306
"""


def _neigh(dst: bytes, ll: bytes, state: int = 0x02, family: int = socket.AF_INET) -> bytes:
    def attr(kind: int, data: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(data), kind) + data
        return raw + b"\0" * ((4 - len(raw) % 4) % 4)

    body = struct.pack("=BBHiHBB", family, 0, 0, 3, state, 0, 1)
    body += attr(nl.NDA_DST, dst) + attr(nl.NDA_LLADDR, ll)
    return struct.pack("=IHHII", 16 + len(body), nl.RTM_NEWNEIGH, 0, 0, 0) + body


def test_neighbour_events_name_the_link_layer_address() -> None:
    """A resolved entry is an event; an incomplete one, and an address event, are not."""
    vip = socket.inet_aton("10.99.1.100")
    mac = bytes.fromhex("0a0b0c0d0e0f")
    data = _neigh(vip, mac) + _neigh(vip, mac, state=nl.NUD_INCOMPLETE)
    assert list(nl.parse_neigh_events(data)) == [nl.NeighEvent("10.99.1.100", "0a:0b:0c:0d:0e:0f")]
    assert list(nl.parse_neigh_events(_neigh(vip, mac)[:-5])) == []  # truncated


def test_ss_info_is_parsed_per_socket() -> None:
    """Each socket line with its info line's lastack; a socket without one has None."""
    socks = vf.parse_ss_info(SS)
    assert [(s.local, s.lport, s.pport, s.lastack_ms) for s in socks] == [
        ("10.99.1.12", 41234, 3306, 30990),
        ("10.99.1.12", 41240, 5672, 12),
        ("10.99.1.12", 41250, 5672, 2500),
        ("fd00::12", 50000, 3306, None),
    ]


def test_only_sockets_silent_since_the_move_are_chosen() -> None:
    """Moved 2 s ago: the query waiting 31 s and the publisher unanswered for 2.5 s go; the
    connection that heard its peer 12 ms ago (made after the move) stays; unknown stays."""
    chosen = vf.stale(vf.parse_ss_info(SS), "10.99.1.100", since_ms=2000)
    assert [s.lport for s in chosen] == [41234, 41250]
    assert vf.stale(vf.parse_ss_info(SS), "10.99.1.101", since_ms=0) == []


def test_sockets_are_ended_by_their_four_tuples_only() -> None:
    """One ss for a batch: each socket by source and destination address and port, or'd;
    IPv6 bracketed."""
    socks = vf.parse_ss_info(SS)
    argv = vf.kill_argv(socks[:2])
    assert argv[:7] == ["ss", "-K", "-H", "-t", "-n", "state", "established"]
    assert argv[7:] == [
        "(", "src", "10.99.1.12:41234", "and", "dst", "10.99.1.100:3306", ")",
        "or",
        "(", "src", "10.99.1.12:41240", "and", "dst", "10.99.1.100:5672", ")",
    ]  # fmt: skip
    assert "[fd00::64]:3306" in vf.kill_argv(socks[3:])
    assert vf.list_argv("10.99.1.100")[-2:] == ["dst", "10.99.1.100"]


def test_a_move_is_a_new_link_layer_address_not_the_first_sighting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """First entry: remembered only; the same address again: nothing; another: a move; the
    VIP arriving here is a move, and the next entry after it is only remembered."""
    moves: list[str] = []

    async def moved(vip: str, at: float, why: str) -> int:
        moves.append(why)
        return 0

    f = vf.VipFollow(frozenset({"10.99.1.100"}))
    monkeypatch.setattr(f, "moved", moved)

    async def go() -> None:
        await f.neighbour(nl.NeighEvent("10.99.1.100", "aa"), 0.0)
        await f.neighbour(nl.NeighEvent("10.99.1.100", "aa"), 0.0)
        await f.neighbour(nl.NeighEvent("10.99.1.7", "cc"), 0.0)  # not a VIP
        await f.neighbour(nl.NeighEvent("10.99.1.100", "bb"), 0.0)
        await f.arrived("10.99.1.100", 0.0)
        await f.neighbour(nl.NeighEvent("10.99.1.100", "aa"), 0.0)

    asyncio.run(go())
    assert moves == ["now at bb (was aa)", "arrived here"]
