"""``vrrp.yield``: give up (or take back) one VRRP instance's VIP for a bounded time.

The typed contract is :class:`hactl.wire.vrrp.VrrpYield`; the only writer of the files
keepalived tracks is the minion's :class:`~hactl.minion.vrrp_yield.YieldKeeper` (only the
instances listed in minion.yaml ``vrrp``, at most its ``max_seconds``).
"""

from __future__ import annotations

from typing import Any

from hactl.minion.executors.base import CommandRefused, ExecContext, Executor
from hactl.minion.vrrp_yield import YieldRefused
from hactl.schema import SchemaError
from hactl.wire.vrrp import COMMAND, FIELDS, VrrpYield


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
