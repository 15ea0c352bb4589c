"""The ``vrrp.yield`` command: one typed contract for the master and the minion (pure).

A node told to yield a VRRP instance gives up its VIP for ``seconds``: its minion writes ``1``
into the instance's keepalived ``track_file`` (declared with ``weight 0``, so a non-zero value
puts the instance in FAULT and keepalived drops the address at once) and writes ``0`` back
when the time is up. ``seconds: 0`` ends a yield now. The master sends it to the lower-ranked
holders of a VIP held twice (a split brain) and renews it while the split lasts; a yield
nobody renews ends by itself, so a master that dies or cannot reach the node never leaves a
VIP without a holder for longer than one yield (docs/reactor.md, "Split brain").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hactl.schema import Field, SchemaError, check

COMMAND: Final = "vrrp.yield"
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
