"""The ``vrrp.yield`` command: one typed contract for the master and the minion (pure).

A node told to yield a VRRP instance gives up its VIP for ``seconds``: its minion writes ``1``
into the instance's keepalived ``track_file`` (declared with ``weight 0``, so a non-zero value
puts the instance in FAULT and keepalived drops the address at once) and writes ``0`` back
when the time is up. ``seconds: 0`` ends a yield now. The master sends it to the lower-ranked
holders of a VIP held twice (a split brain) and renews it while the split lasts; a yield
nobody renews ends by itself, so a master that dies or cannot reach the node never leaves a
VIP without a holder for longer than one yield (docs/reactor.md, "Split brain").

``vrrp.announce`` (:class:`VrrpAnnounce`): the node that kept a VIP through a split brain
tells the LAN again that it answers for it (gratuitous ARP). While the split lasted the
yielding node was MASTER too and announced itself, so clients and routers may still send to
its MAC after it gave the address up; keepalived on the node that was MASTER all along has no
reason to announce again, and the neighbours' stale entries would last until they expire
(~30 s measured). The minion announces only addresses present on its own interfaces.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hactl.schema import Field, SchemaError, check

COMMAND: Final = "vrrp.yield"
ANNOUNCE: Final = "vrrp.announce"
#: the most addresses one announce may name (an instance's VIPs)
MAX_ADDRESSES: Final = 8
#: the longest yield one command may ask for (a minion.yaml may lower it, never raise it)
MAX_SECONDS: Final = 600
_INSTANCE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

FIELDS: Final = (
    Field("instance", (str,), doc="the vrrp_instance name (VI_INTERNAL)"),
    Field("seconds", (int,), between=(0, MAX_SECONDS), doc="how long; 0 ends the yield"),
)


@dataclass(frozen=True, slots=True)
class VrrpYield:
    """Give up (or take back) one VRRP instance on one node for a bounded time."""

    instance: str
    seconds: int

    def __post_init__(self) -> None:
        check(COMMAND, FIELDS, self.args())
        if not _INSTANCE.fullmatch(self.instance):
            raise SchemaError(COMMAND, "instance", f"is not a valid name: {self.instance!r}")

    def args(self) -> dict[str, Any]:
        """The command's arguments on the wire."""
        return {"instance": self.instance, "seconds": self.seconds}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> VrrpYield:
        """Rebuild from wire arguments with the same checks (SchemaError when bad)."""
        checked = check(COMMAND, FIELDS, args)
        return cls(instance=checked["instance"], seconds=checked["seconds"])


ANNOUNCE_FIELDS: Final = (
    Field("instance", (str,), doc="the vrrp_instance name whose VIPs are announced"),
    Field("addresses", (list,), doc=f"its IPv4 VIPs, 1-{MAX_ADDRESSES} (no prefix length)"),
)


@dataclass(frozen=True, slots=True)
class VrrpAnnounce:
    """Announce (gratuitous ARP) the VIPs of one instance this node holds."""

    instance: str
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        check(ANNOUNCE, ANNOUNCE_FIELDS, self.args())
        if not _INSTANCE.fullmatch(self.instance):
            raise SchemaError(ANNOUNCE, "instance", f"is not a valid name: {self.instance!r}")
        if not 1 <= len(self.addresses) <= MAX_ADDRESSES:
            raise SchemaError(
                ANNOUNCE, "addresses", f"must list 1 to {MAX_ADDRESSES}, got {len(self.addresses)}"
            )
        for a in self.addresses:
            try:
                ok = isinstance(a, str) and str(ipaddress.IPv4Address(a)) == a
            except ValueError:
                ok = False
            if not ok:
                raise SchemaError(ANNOUNCE, "addresses", f"{a!r} is not an IPv4 address")

    def args(self) -> dict[str, Any]:
        """The command's arguments on the wire."""
        return {"instance": self.instance, "addresses": list(self.addresses)}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> VrrpAnnounce:
        """Rebuild from wire arguments with the same checks (SchemaError when bad)."""
        checked = check(ANNOUNCE, ANNOUNCE_FIELDS, args)
        return cls(instance=checked["instance"], addresses=tuple(checked["addresses"]))


def track_file(instance: str) -> str:
    """The file name (in the minion's track directory) keepalived tracks for ``instance``."""
    if not _INSTANCE.fullmatch(instance):
        raise SchemaError(COMMAND, "instance", f"is not a valid name: {instance!r}")
    return f"yield_{instance}"


def down_file(service: str) -> str:
    """The file name (in the minion's track directory) keepalived tracks for a watched
    service: ``1`` while it is dead (minion/process_watch.py)."""
    if not _INSTANCE.fullmatch(service):
        raise SchemaError(COMMAND, "service", f"is not a valid name: {service!r}")
    return f"down_{service}"
