"""RabbitMQ actions: move clients off a dead broker, and back when it answers again."""

from __future__ import annotations

from typing import Any

from hactl.master.reactor.rules.actions.base import Action, ActionContext, arg
from hactl.master.reactor.rules.actions.haproxy import on_servers


async def failover(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """A dead broker: maint + shutdown sessions for it in the rabbit backend on every HAProxy,
    so clients reconnect to live brokers now (not after HAProxy's own checks)."""
    node, backend = args["node"], args["backend"]
    maint = await on_servers(ctx, "all", backend, node, "set_state", state="maint")
    cut = await on_servers(ctx, "all", backend, node, "shutdown_sessions")
    return {"maint": maint, "shutdown_sessions": cut}


async def failback(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """The broker answers again: ready in the rabbit backend on every HAProxy."""
    ready = await on_servers(ctx, "all", args["backend"], args["node"], "set_state", state="ready")
    return {"ready": ready}


BROKER = (
    arg("node", (str,), doc="the broker's node id (its server name in the backend)"),
    arg("backend", (str,), required=False, default="rabbitmq", doc="the HAProxy backend"),
)
ACTIONS = (
    Action("rabbitmq.failover", BROKER, failover),
    Action("rabbitmq.failback", BROKER, failback),
)
