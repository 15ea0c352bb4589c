"""The VIP release: netlink address events parsed without a kernel, the ``ss`` command that
ends a departed VIP's connections (never its listeners), and the minion.yaml checks."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from hactl.errors import ConfigError
from hactl.minion import netlink as nl
from hactl.minion import vip_release as vr
from hactl.minion.config import beacon_vips, parse_config


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * ((4 - len(raw) % 4) % 4)


def _msg(kind: int, family: int, attrs: bytes) -> bytes:
    body = struct.pack("=BBBBI", family, 25, 0, 0, 2) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_address_events_are_parsed_from_one_datagram() -> None:
    """A removal and an addition in one datagram, IPv4 (IFA_LOCAL wins) and IPv6."""
    v4 = _attr(nl.IFA_ADDRESS, socket.inet_aton("10.99.0.1")) + _attr(
        nl.IFA_LOCAL, socket.inet_aton("10.99.0.100")
    )
    v6 = _attr(nl.IFA_ADDRESS, socket.inet_pton(socket.AF_INET6, "fd00::64"))
    data = _msg(nl.RTM_DELADDR, socket.AF_INET, v4) + _msg(nl.RTM_NEWADDR, socket.AF_INET6, v6)
    assert list(nl.parse_addr_events(data)) == [
        nl.AddrEvent(new=False, address="10.99.0.100"),
        nl.AddrEvent(new=True, address="fd00::64"),
    ]


def test_other_messages_and_broken_frames_yield_nothing() -> None:
    """A link message, a truncated frame and an address of the wrong width are skipped."""
    link = struct.pack("=IHHII", 20, 16, 0, 0, 0) + b"\0" * 4  # RTM_NEWLINK
    short = _msg(nl.RTM_DELADDR, socket.AF_INET, _attr(nl.IFA_LOCAL, b"\x0a\x63"))
    truncated = _msg(nl.RTM_DELADDR, socket.AF_INET, _attr(nl.IFA_LOCAL, b"\x0a\x63\0\x64"))[:-3]
    assert list(nl.parse_addr_events(link + short)) == []
    assert list(nl.parse_addr_events(truncated)) == []


def test_ss_ends_connected_sockets_of_the_vip_only() -> None:
    """``state connected``: established and closing sockets, never a listener; IPv6 bracketed."""
    argv = vr.ss_argv("10.99.0.100")
    assert argv[:2] == ["ss", "-K"] and argv[-4:] == ["state", "connected", "src", "10.99.0.100"]
    assert vr.ss_argv("fd00::64")[-1] == "[fd00::64]"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        vr.ss_argv("10.99.0.100; reboot")


def test_the_start_sweep_releases_only_vips_that_are_not_here() -> None:
    """At start: the VIP held here keeps its connections; the absent one is released."""
    released: list[str] = []

    async def here() -> set[str]:
        return {"10.99.0.11", "10.99.0.100"}

    release = vr.VipRelease(["10.99.0.100", "10.99.0.150"], here)

    async def fake(vip: str, why: str) -> int:
        released.append(vip)
        return 0

    release.release = fake  # type: ignore[method-assign]  # records instead of running ss
    asyncio.run(release.sweep("absent at start"))
    assert released == ["10.99.0.150"]


def test_vips_come_from_the_vrrp_beacon_and_must_be_addresses() -> None:
    """The beacon's instances give the VIPs (a prefix dropped); a name is a file:line error."""
    beacons = {"vrrp": {"instances": {"VI_A": {"vips": ["10.0.0.10/24"]}, "VI_B": {}}}}
    assert beacon_vips(beacons) == ["10.0.0.10"]
    text = (
        "id: ctl1\nservices: {}\n"
        "vrrp: {track_dir: /run/hactl, instances: [VI_A]}\n"
        "beacons:\n  vrrp: {fifo: /run/hactl/k.fifo, instances: {VI_A: {vips: [vip.example]}}}\n"
    )
    with pytest.raises(ConfigError, match="not an IP address"):
        parse_config(text, "minion.yaml")


def test_keepalived_dump_gives_states_a_restarted_minion_never_heard() -> None:
    """keepalived's JSON dump -> state, effective priority, last transition; INIT skipped."""
    import json

    from hactl.minion.beacons.keepalived_state import InstanceState, parse_dump

    dump = [
        {
            "data": {
                "iname": "VI_INTERNAL",
                "state": 1,
                "effective_priority": 50,
                "last_transition": 17.5,
            }
        },
        {"data": {"iname": "VI_EXTERNAL", "state": 2, "effective_priority": 150}},
        {"data": {"iname": "VI_NEW", "state": 0}},
        {"stats": {}},
    ]
    assert parse_dump(json.dumps(dump)) == {
        "VI_INTERNAL": InstanceState("BACKUP", 50, 17.5),
        "VI_EXTERNAL": InstanceState("MASTER", 150, 0.0),
    }
