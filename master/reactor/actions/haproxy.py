"""HAProxy actions: set a server's state or weight, cut its sessions -- on one node or on all.

``node: all`` means every node whose minion reports an ``haproxy`` beacon (from the cluster
view), concurrently. ``backend: "*"`` means every backend in which that server exists (from
the same view), which is how a whole node is drained at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.errors import CommandError
from master.reactor.actions.base import Action, ActionContext, ActionFailed

STATES = ("ready", "drain", "maint")


def targets(ctx: ActionContext, node: str) -> list[str]:
    """The HAProxy nodes an action addresses."""
    if node == "all":
        return [n for n, a in sorted(ctx.view.nodes.items()) if a.get("haproxy")]
    return [node]


def backends_of(ctx: ActionContext, node: str, server: str, backend: str) -> list[str]:
    """``[backend]``, or every backend of ``node`` that has ``server`` when backend is ``*``."""
    if backend != "*":
        return [backend]
    items = ctx.view.nodes.get(node, {}).get("haproxy") or {}
    return sorted({str(v.get("backend")) for k, v in items.items()
                   if isinstance(v, dict) and v.get("server") == server})  # fmt: skip


async def _runtime(ctx: ActionContext, node: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        reply = await ctx.effects.request(
            node, "haproxy.runtime", args, ctx.settings.command_timeout
        )
    except CommandError as exc:
        return {"node": node, "backend": args["backend"], "ok": False, "detail": exc.detail}
    ok = reply.ok and bool(reply.result.get("result"))
    detail = reply.result.get("comment", "") if reply.ok else reply.error_message
    return {"node": node, "backend": args["backend"], "ok": ok, "detail": detail}


async def on_servers(
    ctx: ActionContext, args: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, Any]:
    """Run one runtime verb for ``args.server`` on the targeted nodes/backends."""
    server = str(args["server"])
    calls = [
        (node, {**runtime, "backend": be, "server": server})
        for node in targets(ctx, str(args.get("node", "all")))
        for be in backends_of(ctx, node, server, str(args["backend"]))
    ]
    if ctx.observe:
        return {"observe": True, "would": [{"node": n, **a} for n, a in calls]}
    if not calls:
        raise ActionFailed(f"no HAProxy node/backend for server {server}")
    results = await asyncio.gather(*(_runtime(ctx, n, a) for n, a in calls))
    failed = [r for r in results if not r["ok"]]
    out = {"calls": list(results)}
    if failed:
        raise ActionFailed(f"{len(failed)} of {len(results)} HAProxy calls failed", out)
    return out


async def set_state(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``set server B/S state ready|drain|maint``."""
    if args["state"] not in STATES:
        raise ActionFailed(f"state must be one of {', '.join(STATES)}")
    return await on_servers(ctx, args, {"verb": "set_state", "state": args["state"]})


async def set_weight(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``set server B/S weight W`` (0..256)."""
    try:
        weight = int(args["weight"])
    except (TypeError, ValueError):
        raise ActionFailed(f"weight must be an integer, got {args['weight']!r}") from None
    return await on_servers(ctx, args, {"verb": "set_weight", "weight": weight})


async def shutdown_sessions(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``shutdown sessions server B/S``: clients reconnect elsewhere at once."""
    return await on_servers(ctx, args, {"verb": "shutdown_sessions"})


async def rabbitmq_failover(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """A dead broker: maint + shutdown sessions for it in the rabbit backend on every HAProxy."""
    base = {"node": "all", "backend": args.get("backend", "rabbitmq"), "server": args["node"]}
    if args.get("state", "maint") == "ready":
        return {"ready": await on_servers(ctx, base, {"verb": "set_state", "state": "ready"})}
    maint = await on_servers(ctx, base, {"verb": "set_state", "state": "maint"})
    cut = await on_servers(ctx, base, {"verb": "shutdown_sessions"})
    return {"maint": maint, "shutdown_sessions": cut}


SERVER_ARGS = ("backend", "server")
ACTIONS = (
    Action("haproxy.set_state", (*SERVER_ARGS, "state"), ("node",), set_state),
    Action("haproxy.set_weight", (*SERVER_ARGS, "weight"), ("node",), set_weight),
    Action("haproxy.shutdown_sessions", SERVER_ARGS, ("node",), shutdown_sessions),
    Action("rabbitmq.failover", ("node",), ("backend", "state"), rabbitmq_failover),
)
