"""``event.fire``, ``state.apply``, ``minion.ping`` and ``service.restart``."""

from __future__ import annotations

from typing import Any

from hactl.errors import HactlError
from hactl.master.reactor.rules.actions.base import Action, ActionContext, ActionFailed, arg
from hactl.wire.envelope import new_event
from hactl.wire.tags import MASTER_ID


async def fire(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """Publish an event (a follow-up, an alert); stored once even if the rule runs twice."""
    data = args.get("data") or {}
    if not isinstance(data, dict):
        raise ActionFailed("data must be a mapping")
    try:
        event = new_event(str(args["tag"]), MASTER_ID, {**data, "trigger": ctx.event.id})
    except HactlError as exc:
        raise ActionFailed(str(exc)) from None
    if ctx.observe:
        return {"observe": True, "would": event.tag}
    await ctx.effects.publish(event, msg_id=ctx.msg_id("fire"))
    return {"tag": event.tag, "id": event.id}


async def minion_ping(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """Round-trip ``test.ping`` to a minion (is its command path alive?)."""
    node = str(args["node"])
    if ctx.observe:
        return {"observe": True, "would": f"test.ping {node}"}
    try:
        reply = await ctx.effects.request(node, "test.ping", {}, ctx.settings.command_timeout)
    except HactlError as exc:
        raise ActionFailed(str(exc)) from None
    if not reply.ok:
        raise ActionFailed(f"{node}: {reply.error_message}")
    return {"node": node, "pong": True}


async def state_apply(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """Apply the master's state tree (``hactl master --states``) to ``target``."""
    from hactl.master.apply import apply_plans  # noqa: PLC0415 - the compiler only when used
    from hactl.master.states.compile import compile_tree  # noqa: PLC0415 - as above
    from hactl.master.states.tree import load_tree  # noqa: PLC0415 - as above

    if ctx.settings.states is None:
        raise ActionFailed("the master runs without --states: no tree to apply")
    try:
        tree = load_tree(ctx.settings.states, list(ctx.settings.pillar))
        nodes = sorted(n.id for n in tree.targets(str(args.get("target", "*"))))
        plans = compile_tree(tree, nodes)
    except HactlError as exc:
        raise ActionFailed(str(exc)) from None
    if ctx.observe:
        return {"observe": True, "would": nodes}
    bus = getattr(ctx.effects, "bus", None)
    if bus is None:
        raise ActionFailed("state.apply needs the NATS bus")
    report = await apply_plans(bus, plans, test=bool(args.get("test", False)))
    if not report.ok:
        raise ActionFailed("apply failed on some minions", report.as_dict())
    return {"jid": report.jid, "minions": nodes}


async def service_restart(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """``service.restart`` of one configured service on one minion (the minion refuses any
    service its minion.yaml does not list); ``pre_stop: false`` skips the service's pre_stop
    (a paused broker has nothing to drain; sent only then, so an older minion still takes the
    plain restart)."""
    node, name = str(args["node"]), str(args["name"])
    if ctx.observe:
        return {"observe": True, "would": f"service.restart {name} on {node}"}
    cmd: dict[str, Any] = {"name": name}
    if args.get("pre_stop", True) is False:
        cmd["pre_stop"] = False
    try:
        reply = await ctx.effects.request(
            node, "service.restart", cmd, ctx.settings.command_timeout
        )
    except HactlError as exc:
        raise ActionFailed(str(exc)) from None
    if not reply.ok:
        raise ActionFailed(f"{node}: {reply.error_message}")
    if not reply.result.get("result"):
        raise ActionFailed(f"{node}: {str(reply.result.get('comment'))[-300:]}")
    return {"node": node, "restarted": name}


ACTIONS = (
    Action(
        "event.fire", (arg("tag", (str,)), arg("data", (dict,), required=False)), fire, inline=True
    ),
    Action(
        "state.apply",
        (
            arg("target", (str,), required=False, default="*"),
            arg("test", (bool,), required=False, default=False),
        ),
        state_apply,
    ),
    Action("minion.ping", (arg("node", (str,)),), minion_ping),
    Action(
        "service.restart",
        (
            arg("node", (str,)),
            arg("name", (str,)),
            arg("pre_stop", (bool,), required=False, default=True),
        ),
        service_restart,
    ),
)
