"""Gratuitous ARP: tell the LAN which MAC answers for an address now (``vrrp.announce``).

A gratuitous ARP is an ARP packet about the sender's own address, broadcast: every neighbour
holding an entry for that address updates it to the sender's MAC (Linux does so for both the
request and the reply form; it creates no new entry unless ``arp_accept`` says so, so an
announce cannot fill anyone's table). keepalived sends them when an instance becomes MASTER;
the minion sends them on the master's word after a split brain, when the node that kept the
VIP must win back the neighbours the yielding node announced itself to.

Narrow by construction: only IPv4 addresses configured on one of this namespace's own
Ethernet interfaces (read from ``ip -j addr`` at the time of the call), only on that
interface, a bounded number of frames. The frame builders are pure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


@dataclass(frozen=True, slots=True)
class Link:
    """Where an address lives: the interface's name and its MAC."""

    ifname: str
    mac: bytes


def mac_bytes(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` -> 6 bytes (ValueError when it is not a MAC)."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def arp_frame(mac: bytes, address: str, *, reply: bool) -> bytes:
    """One gratuitous ARP Ethernet frame: ``address`` is at ``mac`` (sender = target)."""
    if len(mac) != 6:
        raise ValueError("a MAC has 6 bytes")
    ip = ipaddress.IPv4Address(address).packed
    eth = BROADCAST + mac + ETH_P_ARP.to_bytes(2, "big")
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, op 1 (request) or 2 (reply)
    arp = b"\x00\x01\x08\x00\x06\x04" + (b"\x00\x02" if reply else b"\x00\x01")
    target_mac = BROADCAST if reply else b"\x00" * 6
    return eth + arp + mac + ip + target_mac + ip


def links_by_address(ip_addr_json: str) -> dict[str, Link]:
    """IPv4 address -> its Ethernet interface, from ``ip -j addr`` output."""
    out: dict[str, Link] = {}
    for link in json.loads(ip_addr_json or "[]"):
        if link.get("link_type") != "ether" or not link.get("ifname"):
            continue
        try:
            mac = mac_bytes(str(link.get("address", "")))
        except ValueError:
            continue
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                out[str(info["local"])] = Link(str(link["ifname"]), mac)
    return out


async def ip_addr_json(timeout: float = 2.0, netns: str = "") -> str:
    """``ip -j addr`` of this namespace, or of the named ``netns`` (bounded)."""
    argv = ["ip", "-n", netns, "-j", "addr"] if netns else ["ip", "-j", "addr"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out.decode()


async def local_links(timeout: float = 2.0) -> dict[str, Link]:
    """This namespace's IPv4 addresses and their interfaces (``ip -j addr``)."""
    return links_by_address(await ip_addr_json(timeout))


def send_frames(ifname: str, frames: Iterable[bytes]) -> int:
    """Send raw Ethernet frames on ``ifname`` (CAP_NET_RAW); how many went out."""
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((ifname, 0))
        for frame in frames:
            s.send(frame)
            sent += 1
    return sent


async def announce(
    addresses: Iterable[str], links: dict[str, Link], *, rounds: int = 2, spacing: float = 0.2
) -> dict[str, str]:
    """Announce each address on its interface, ``rounds`` times ``spacing`` apart (a lost
    broadcast is covered by the next); address -> interface. The caller checked that every
    address is in ``links``."""
    where = {a: links[a] for a in addresses}
    for i in range(rounds):
        if i:
            await asyncio.sleep(spacing)
        for address, link in where.items():
            send_frames(
                link.ifname,
                (
                    arp_frame(link.mac, address, reply=False),
                    arp_frame(link.mac, address, reply=True),
                ),
            )
    return {a: link.ifname for a, link in where.items()}
