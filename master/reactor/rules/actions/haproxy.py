"""HAProxy actions: set a server's state or weight, cut its sessions -- on one node or on all.

``node: all`` means every node whose minion reports an ``haproxy`` beacon (from the cluster
view), concurrently. ``backend: "*"`` means every backend in which that server exists (from
the same view), which is how a whole node is drained at once. Each call is one
:class:`hactl.wire.haproxy.HaproxyRuntime`, the contract the minion checks again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.errors import CommandError
from hactl.master.reactor.rules.actions.base import Action, ActionContext, ActionFailed, arg
from hactl.schema import SchemaError
from hactl.wire.haproxy import COMMAND, STATES, WEIGHT, HaproxyRuntime


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
    return sorted(
        {
            str(v.get("backend"))
            for k, v in items.items()
            if isinstance(v, dict) and v.get("server") == server
        }
    )


async def _runtime(ctx: ActionContext, node: str, change: HaproxyRuntime) -> dict[str, Any]:
    where = {"node": node, "backend": change.backend}
    try:
        reply = await ctx.effects.request(
            node, COMMAND, change.args(), ctx.settings.command_timeout
        )
    except CommandError as exc:
        return {**where, "ok": False, "detail": exc.detail}
    ok = reply.ok and bool(reply.result.get("result"))
    detail = reply.result.get("comment", "") if reply.ok else reply.error_message
    return {**where, "ok": ok, "detail": detail}


async def on_servers(
    ctx: ActionContext, node: str, backend: str, server: str, verb: str, **value: Any
) -> dict[str, Any]:
    """Run one runtime verb for ``server`` on the targeted nodes/backends."""
    try:
        calls = [
            (n, HaproxyRuntime.from_args({"verb": verb, "backend": be, "server": server, **value}))
            for n in targets(ctx, node)
            for be in backends_of(ctx, n, server, backend)
        ]
    except SchemaError as exc:
        raise ActionFailed(str(exc)) from None
    if ctx.observe:
        return {"observe": True, "would": [{"node": n, **c.args()} for n, c in calls]}
    if not calls:
        raise ActionFailed(f"no HAProxy node/backend for server {server}")
    results = await asyncio.gather(*(_runtime(ctx, n, c) for n, c in calls))
    failed = [r for r in results if not r["ok"]]
    out = {"calls": list(results)}
    if failed:
        raise ActionFailed(f"{len(failed)} of {len(results)} HAProxy calls failed", out)
    return out


async def set_state(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``set server B/S state ready|drain|maint``."""
    return await on_servers(
        ctx, args["node"], args["backend"], args["server"], "set_state", state=args["state"]
    )


async def set_weight(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``set server B/S weight W`` (0..256)."""
    return await on_servers(
        ctx, args["node"], args["backend"], args["server"], "set_weight", weight=args["weight"]
    )


async def shutdown_sessions(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``shutdown sessions server B/S``: clients reconnect elsewhere at once."""
    return await on_servers(ctx, args["node"], args["backend"], args["server"], "shutdown_sessions")


NODE = arg("node", (str,), required=False, default="all", doc="a node id, or all")
SERVER = (
    NODE,
    arg("backend", (str,), doc="a backend name, or * for every backend holding the server"),
    arg("server", (str,), doc="the server (a node id in the shipped states)"),
)
ACTIONS = (
    Action("haproxy.set_state", (*SERVER, arg("state", (str,), choices=STATES)), set_state),
    Action("haproxy.set_weight", (*SERVER, arg("weight", (int,), between=WEIGHT)), set_weight),
    Action("haproxy.shutdown_sessions", SERVER, shutdown_sessions),
)
