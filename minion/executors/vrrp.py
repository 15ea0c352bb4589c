"""``vrrp.yield``: give up (or take back) one VRRP instance's VIP for a bounded time;
``vrrp.announce``: re-announce the VIPs this node kept (gratuitous ARP, minion/garp.py).

The typed contract is :class:`hactl.wire.vrrp.VrrpYield`; the only writer of the files
keepalived tracks is the minion's :class:`~hactl.minion.vrrp_yield.YieldKeeper` (only the
instances listed in minion.yaml ``vrrp``, at most its ``max_seconds``).
"""

from __future__ import annotations

from typing import Any

from hactl.minion.executors.base import CommandRefused, ExecContext, Executor
from hactl.minion.garp import announce, local_links
from hactl.minion.vrrp_yield import YieldRefused
from hactl.schema import SchemaError
from hactl.wire.vrrp import ANNOUNCE, ANNOUNCE_FIELDS, COMMAND, FIELDS, VrrpAnnounce, VrrpYield


async def vrrp_yield(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Write the instance's yield file through the keeper."""
    try:
        ask = VrrpYield.from_args(args)
    except SchemaError as exc:
        raise CommandRefused(COMMAND, f"{exc.field} {exc.reason}".strip()) from None
    if ctx.vrrp is None:
        raise CommandRefused(COMMAND, "no vrrp section in minion.yaml (track_dir, instances)")
    try:
        done = ctx.vrrp.set(ask.instance, ask.seconds)
    except YieldRefused as exc:
        raise CommandRefused(COMMAND, str(exc)) from None
    changed = done["yielded"] != (done["was"] > 0)
    return {
        "result": True,
        "changes": {"yielded": done["yielded"]} if changed else {},
        "comment": (
            f"{ask.instance}: VIP given up for {ask.seconds} s"
            if ask.seconds
            else f"{ask.instance}: yield ended"
        ),
    }


VRRP_YIELD = Executor(name=COMMAND, args=FIELDS, body=vrrp_yield)


async def vrrp_announce(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Announce (gratuitous ARP) VIPs of an instance this node holds, on their interfaces."""
    try:
        ask = VrrpAnnounce.from_args(args)
    except SchemaError as exc:
        raise CommandRefused(ANNOUNCE, f"{exc.field} {exc.reason}".strip()) from None
    if ctx.vrrp is None:
        raise CommandRefused(ANNOUNCE, "no vrrp section in minion.yaml (track_dir, instances)")
    if ask.instance not in ctx.vrrp.settings.instances:
        raise CommandRefused(
            ANNOUNCE,
            f"{ask.instance!r} is not an instance of this node"
            f" (minion.yaml vrrp.instances: {', '.join(ctx.vrrp.settings.instances)})",
        )
    if ctx.vrrp.remaining(ask.instance) > 0:
        raise CommandRefused(ANNOUNCE, f"{ask.instance} is yielding here: it holds no VIP")
    links = await local_links()
    missing = [a for a in ask.addresses if a not in links]
    if missing:  # never announce an address this node does not hold: that would steal it
        raise CommandRefused(
            ANNOUNCE, f"not held here (no Ethernet interface has it): {', '.join(missing)}"
        )
    done = await announce(ask.addresses, links)
    return {
        "result": True,
        "changes": {},
        "comment": f"{ask.instance}: announced "
        + ", ".join(f"{a} on {i}" for a, i in sorted(done.items())),
    }


VRRP_ANNOUNCE = Executor(name=ANNOUNCE, args=ANNOUNCE_FIELDS, body=vrrp_announce)
