"""vrrp.announce on the minion: gratuitous ARP frames, and only for addresses held here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

import hactl.minion.executors.vrrp as vrrp_exec
from hactl.minion import garp
from hactl.minion.executors import dispatch
from hactl.minion.executors.base import ExecContext
from hactl.minion.vrrp_yield import VrrpSettings, YieldKeeper
from hactl.wire.commands import CommandRequest

MAC = "02:00:0a:63:00:0b"
IP_ADDR = json.dumps(
    [
        {"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00",
         "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
        {"ifname": "eth0", "link_type": "ether", "address": MAC,
         "addr_info": [{"family": "inet", "local": "10.99.0.11"},
                       {"family": "inet", "local": "10.99.0.100"},
                       {"family": "inet6", "local": "fe80::1"}]},
    ]
)  # fmt: skip


def test_frame_is_a_broadcast_arp_about_the_senders_own_address() -> None:
    """Request form: Ethernet broadcast, ARP op 1, sender = target = the VIP, sender MAC
    ours; reply form: op 2. 42 bytes each (the kernel pads to 60)."""
    mac = garp.mac_bytes(MAC)
    req = garp.arp_frame(mac, "10.99.0.100", reply=False)
    rep = garp.arp_frame(mac, "10.99.0.100", reply=True)
    assert len(req) == len(rep) == 42
    assert req[:6] == b"\xff" * 6 and req[6:12] == mac and req[12:14] == b"\x08\x06"
    assert req[14:20] == b"\x00\x01\x08\x00\x06\x04"
    assert req[20:22] == b"\x00\x01" and rep[20:22] == b"\x00\x02"
    ip = bytes([10, 99, 0, 100])
    assert req[22:28] == mac and req[28:32] == ip and req[38:42] == ip
    with pytest.raises(ValueError, match="not a MAC"):
        garp.mac_bytes("02:00:0a:63:00")
    with pytest.raises(ValueError, match="not permitted"):
        garp.arp_frame(mac, "10.99.0.300", reply=False)


def test_links_are_read_from_ip_json_ethernet_ipv4_only() -> None:
    """Loopback and IPv6 addresses are not announceable; each IPv4 maps to its interface."""
    links = garp.links_by_address(IP_ADDR)
    assert set(links) == {"10.99.0.11", "10.99.0.100"}
    assert links["10.99.0.100"] == garp.Link("eth0", garp.mac_bytes(MAC))


async def test_executor_announces_only_what_this_node_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held VIP is announced on its interface (request + reply forms, two rounds); an
    address not held here, an instance not listed, or one this node is yielding is refused
    with a reason and nothing is sent."""
    sent: list[tuple[str, bytes]] = []

    async def links() -> dict[str, garp.Link]:
        return garp.links_by_address(IP_ADDR)

    def send(ifname: str, frames: Iterable[bytes]) -> int:
        got = list(frames)
        sent.extend((ifname, f) for f in got)
        return len(got)

    monkeypatch.setattr(vrrp_exec, "local_links", links)
    monkeypatch.setattr(garp, "send_frames", send)
    keeper = YieldKeeper(VrrpSettings(str(tmp_path), ("VI_INTERNAL", "VI_EXTERNAL")))
    ctx = ExecContext(minion_id="ctl1", vrrp=keeper)

    def ask(instance: str, *addresses: str) -> CommandRequest:
        return CommandRequest("vrrp.announce", {"instance": instance, "addresses": list(addresses)})

    reply = await dispatch(ctx, ask("VI_INTERNAL", "10.99.0.100"))
    assert reply.ok and "10.99.0.100 on eth0" in reply.result["comment"], reply
    assert [i for i, _ in sent] == ["eth0"] * 4 and {f[20:22] for _, f in sent} == {
        b"\x00\x01",
        b"\x00\x02",
    }
    sent.clear()
    keeper.set("VI_EXTERNAL", 5)
    for req, why in (
        (ask("VI_INTERNAL", "10.99.0.100", "10.99.1.100"), "not held here"),
        (ask("VI_OTHER", "10.99.0.100"), "not an instance of this node"),
        (ask("VI_EXTERNAL", "10.99.0.100"), "yielding here"),
        (ask("VI_INTERNAL", "10.99.0.100/24"), "not an IPv4 address"),
    ):
        reply = await dispatch(ctx, req)
        assert not reply.ok and why in reply.error_message, (why, reply)
    keeper.close()
    assert sent == []
    bare = await dispatch(ExecContext(minion_id="x"), ask("VI_INTERNAL", "10.99.0.100"))
    assert not bare.ok and "no vrrp section" in bare.error_message
