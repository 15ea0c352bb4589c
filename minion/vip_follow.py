"""Move this node's own clients with a VIP: end their connections that went with it.

vip_release.py ends, on the node a VIP leaves, the connections *accepted* on it. That fails
exactly when it is needed most: a holder cut off the network (carrier up, a hung kernel, a
switch port gone) neither loses its address nor reaches anyone to send a reset. The clients
on the other controllers -- every OpenStack service, talking to the internal VIP -- then sit on
connections whose server end is unreachable. A client that writes learns of it at once (its
next segment reaches the new holder, which resets it); a client that *waits* (an oslo.db query
in flight, an RPC server consuming) hears nothing until its own timeout or heartbeat: the lab
measured oslo.db writes stalled 35 s through a 30 s cut of the VIP holder, and RPC servers 11-18 s.

So every minion watches, for each VIP of its vrrp beacon, two kernel events (the same netlink
socket as the release, no polling):

- the VIP **arrives here** (``RTM_NEWADDR``): this node is the new holder;
- the VIP's **neighbour entry names a new link-layer address** (``RTM_NEWNEIGH``, from the new
  holder's gratuitous ARP / unsolicited NA): another node is.

Either way, every connection from this node to the VIP that was made before the move now ends
on a node that no longer holds it. A connection made after the move has heard its peer since
(the SYN-ACK at least); one made before has heard nothing, unless the old holder is still
alive to answer it (then it is left to its own devices, as before). So at the event the
minion ends, each by its exact four-tuple (``ss -K``, the kernel's SOCK_DESTROY: an error in the
client at once, which reconnects -- oslo.db's ``wrap_db_retry``, kombu's reconnect -- through
the VIP's new holder), every established TCP socket to the VIP whose last ACK came before the
event (``ss -i``'s ``lastack``). Sockets to other addresses and listeners are never touched.
The parsers are pure.

minion.yaml ``vrrp.follow_connections`` (default true) turns it off.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hactl.log import get_logger
from hactl.minion import ss
from hactl.minion.netlink import NeighEvent

KILL_BATCH = 64  # sockets per ss -K

log = get_logger("hactl.minion")


@dataclass(frozen=True, slots=True)
class ClientSocket:
    """One established TCP socket from this node to a VIP, as ``ss -t -i`` shows it."""

    local: str
    lport: int
    peer: str
    pport: int
    lastack_ms: int | None  # since the last ACK from the peer


_ENDPOINT = re.compile(r"^\[?(?P<host>[^\]]+?)\]?(?:%\S+)?:(?P<port>\d+)$")


def _endpoint(text: str) -> tuple[str, int] | None:
    m = _ENDPOINT.match(text)
    if m is None:
        return None
    try:
        return str(ipaddress.ip_address(m["host"])), int(m["port"])
    except ValueError:
        return None


def parse_ss_info(text: str) -> list[ClientSocket]:
    """``ss -H -t -n -i state established dst VIP``: a socket line (recv-q, send-q, local,
    peer), then its indented info line (``lastack:N`` among the fields)."""
    out: list[ClientSocket] = []
    current: list[str] | None = None
    for line in [*text.splitlines(), ""]:
        if line[:1] in (" ", "\t"):
            if current is not None:
                m = re.search(r"\blastack:(\d+)", line)
                out.extend(_socket(current, int(m[1]) if m else None))
                current = None
            continue
        if current is not None:  # a socket line with no info line
            out.extend(_socket(current, None))
        current = line.split() if line.strip() else None
    return out


def _socket(fields: list[str], lastack: int | None) -> list[ClientSocket]:
    if len(fields) < 4:
        return []
    local, peer = _endpoint(fields[-2]), _endpoint(fields[-1])
    if local is None or peer is None:
        return []
    return [ClientSocket(local[0], local[1], peer[0], peer[1], lastack)]


def stale(sockets: list[ClientSocket], vip: str, since_ms: float) -> list[ClientSocket]:
    """The sockets to ``vip`` that have heard nothing since the move, ``since_ms`` ago."""
    return [
        s for s in sockets if s.peer == vip and s.lastack_ms is not None and s.lastack_ms > since_ms
    ]


def list_argv(vip: str) -> list[str]:
    """``ss`` listing the established sockets to ``vip`` with their timers."""
    return ["ss", "-H", "-t", "-n", "-i", "state", "established", "dst", ss.host(vip)]


def _endpoint_text(address: str, port: int) -> str:
    return f"{ss.host(address)}:{port}"


def kill_argv(sockets: Sequence[ClientSocket]) -> list[str]:
    """One ``ss`` ending exactly these sockets, each by its four-tuple (``( src A:P and dst
    V:Q ) or ...``); nothing else matches."""
    expr: list[str] = []
    for s in sockets:
        expr += ["or"] if expr else []
        expr += ["(", "src", _endpoint_text(s.local, s.lport)]
        expr += ["and", "dst", _endpoint_text(s.peer, s.pport), ")"]
    return ["ss", "-K", "-H", "-t", "-n", "state", "established", *expr]


class VipFollow:
    """Ends this node's connections to a VIP that moved (see the module's docstring)."""

    def __init__(self, vips: frozenset[str]) -> None:
        self.vips = vips
        self.seen: dict[str, str] = {}  # VIP -> the link-layer address last seen for it
        self.follows = 0
        self.ended = 0

    async def neighbour(self, event: NeighEvent, at: float) -> int:
        """A neighbour entry: a VIP now at another link-layer address has moved."""
        if event.address not in self.vips:
            return 0
        before = self.seen.get(event.address)
        self.seen[event.address] = event.lladdr
        if before is None or before == event.lladdr:
            return 0
        return await self.moved(event.address, at, f"now at {event.lladdr} (was {before})")

    async def arrived(self, vip: str, at: float) -> int:
        """The VIP was added here: this node is its holder now."""
        self.seen.pop(vip, None)  # a later neighbour entry is a move away from here
        return await self.moved(vip, at, "arrived here")

    async def moved(self, vip: str, at: float, why: str) -> int:
        """End the connections to ``vip`` that have heard nothing since ``at`` (monotonic:
        when the kernel told of the move); how many (bounded, never raises)."""
        listing = await ss.run(list_argv(vip), "vip_follow_failed", vip=vip)
        if listing is None:
            return 0
        old = stale(parse_ss_info(listing), vip, (time.monotonic() - at) * 1000)
        ended = 0
        for i in range(0, len(old), KILL_BATCH):  # a busy controller's hundreds: a few ss
            out = await ss.run(kill_argv(old[i : i + KILL_BATCH]), "vip_follow_failed", vip=vip)
            ended += ss.lines(out)
        self.follows += 1
        self.ended += ended
        log.info(
            "vip_clients_moved",
            vip=vip,
            why=why,
            connections=ended,
            ports=sorted({s.pport for s in old}),
        )
        return ended
