"""Galera actions: ``galera.recover_cluster`` (the planner, executed) and ``galera.rejoin``.

recover_cluster, step by step, each step an event ``hactl/event/galera/<step>``:
1. ``positions``: ask every member's minion for ``galera.position`` (recovering crashed ones
   with ``--wsrep-recover``); a member that does not answer is unreachable;
2. ``decision``: :func:`master.reactor.galera_plan.plan`; a refusal ends here (failed, with
   the reason) -- never a guess;
3. ``bootstrap``: take the lease ``galera-bootstrap.<uuid>.<seqno>`` (one bootstrap per
   epoch, cluster-wide, even with several masters) and bootstrap the chosen node;
4. ``rejoin``: start the others one at a time with their position (IST), each only after the
   previous one is Synced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hactl.errors import CommandError, DecodeError
from hactl.master.reactor.rules.actions.base import Action, ActionContext, ActionFailed, arg
from hactl.master.reactor.rules.galera_plan import Decision, Member, plan
from hactl.wire.approvals import Approval
from hactl.wire.envelope import new_event
from hactl.wire.leases import BootstrapLease, bootstrap_key, decode_bootstrap, encode_bootstrap
from hactl.wire.maint import covering
from hactl.wire.tags import MASTER_ID, event_tag


def members_of(ctx: ActionContext, given: Any) -> list[str]:
    """The member list: given, or every node whose minion runs the galera beacon."""
    if isinstance(given, list) and given:
        return [str(m) for m in given]
    return [n for n, a in sorted(ctx.view.nodes.items()) if a.get("galera")]


async def _step(ctx: ActionContext, step: str, data: dict[str, Any]) -> None:
    event = new_event(
        event_tag("galera", step), MASTER_ID, {**data, "rule": ctx.rule, "trigger": ctx.event.id}
    )
    await ctx.effects.publish(event, msg_id=ctx.msg_id(f"galera-{step}"))


PING_TIMEOUT = 5.0


async def position(ctx: ActionContext, node: str) -> Member:
    """One member's position from its minion (unreachable when it does not answer). A quick
    ping first: a silent minion is unreachable within PING_TIMEOUT, not after the minutes a
    real ``--wsrep-recover`` on a large datadir may take."""
    try:
        await ctx.effects.request(
            node, "test.ping", {}, min(PING_TIMEOUT, ctx.settings.galera_timeout)
        )
        reply = await ctx.effects.request(node, "galera.position", {}, ctx.settings.galera_timeout)
    except CommandError:
        return Member(node, reachable=False)
    r = reply.result if reply.ok else {}
    if not reply.ok or not r.get("result"):
        return Member(node, reachable=True)  # answered, but no position: unknown
    running = bool(r.get("running"))
    return Member(
        node,
        reachable=True,
        running=running,
        primary=running and r.get("cluster_status") == "Primary",
        synced=running and r.get("cluster_status") == "Primary",
        uuid=r.get("uuid"),
        seqno=r.get("seqno"),
        safe_to_bootstrap=bool(r.get("safe_to_bootstrap")),
    )


async def _cmd(ctx: ActionContext, node: str, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        reply = await ctx.effects.request(node, cmd, args, ctx.settings.galera_timeout)
    except CommandError as exc:
        raise ActionFailed(f"{cmd} on {node}: {exc.detail}") from None
    if not reply.ok:
        raise ActionFailed(f"{cmd} on {node} refused: {reply.error_message}")
    if not reply.result.get("result"):
        raise ActionFailed(f"{cmd} on {node} failed: {reply.result.get('comment')}")
    return dict(reply.result)


def from_view(ctx: ActionContext, node: str) -> Member:
    """A member as the beacons last reported it (observe mode: no command is sent)."""
    g = ((ctx.view.nodes.get(node) or {}).get("galera") or {}).get("local")
    if not isinstance(g, dict):
        return Member(node, reachable=False)
    running = bool(g.get("running"))
    seqno = g.get("last_committed") if running else g.get("seqno")
    uuid = g.get("cluster_state_uuid") if running else g.get("uuid")
    return Member(
        node,
        reachable=True,
        running=running,
        primary=running and g.get("cluster_status") == "Primary",
        synced=bool(g.get("synced")),
        uuid=uuid,
        seqno=seqno,
        safe_to_bootstrap=bool(g.get("safe_to_bootstrap")),
    )


async def recover_cluster(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """Bring a fully stopped / non-Primary cluster back, safely, or refuse with the reason."""
    nodes = members_of(ctx, args.get("members"))
    # a member under Galera maintenance is left alone: not even its position is read (that
    # may run mariadbd --wsrep-recover on its datadir); to the planner it is unreachable
    held = sorted(n for n in nodes if covering(ctx.maintenance, n, "galera") is not None)
    if ctx.observe:  # report the decision from the beacons' view; touch nothing
        found = [from_view(ctx, n) for n in nodes if n not in held]
    else:
        found = list(await asyncio.gather(*(position(ctx, n) for n in nodes if n not in held)))
    members = {m.node: m for m in found} | {n: Member(n, reachable=False) for n in held}
    await _step(
        ctx,
        "positions",
        {"members": {n: _m(m) for n, m in members.items()}, "maintenance": held},
    )
    allow = args.get("allow_unreachable")
    allow = ctx.settings.allow_unreachable if allow is None else bool(allow)
    decision = plan(members, allow_unreachable=allow)
    await _step(ctx, "decision", _d(decision))
    if decision.kind == "nothing":
        return {"decision": _d(decision)}
    answered: dict[str, Any] = {}
    if decision.kind == "refuse" and ctx.ask is not None and not ctx.observe:
        decision, answered = await _ask_past_unreachable(
            ctx, ctx.ask, nodes, held, members, decision
        )
    if decision.kind == "refuse":
        why = decision.reason + (f" (under maintenance: {', '.join(held)})" if held else "")
        raise ActionFailed(f"refused: {why}", {"decision": _d(decision)})
    if ctx.observe:
        return {"observe": True, "decision": _d(decision)}
    lease = bootstrap_key(decision.uuid, decision.seqno)
    record = BootstrapLease(decision.node, decision.uuid, decision.seqno, MASTER_ID, time.time())
    if not await ctx.effects.lease(lease, encode_bootstrap(record)):  # the minion checks it
        # a master that took this epoch's lease may have died before its bootstrap (nothing
        # runs: the planner saw no Primary and no running member); the lease fences the
        # epoch to the node it names, so the same plan is resumed -- the minion refuses a
        # bootstrap while mariadbd runs and takes a per-datadir lock, so a slow first master
        # and this one cannot both start it; any other plan is refused
        held_by = await _lease_holder(ctx, lease)
        if held_by is None or held_by.node != decision.node:
            raise ActionFailed(f"lease {lease} already taken: this epoch was bootstrapped once")
        await _step(
            ctx, "resume", {"node": decision.node, "lease": lease, "granted_at": held_by.granted_at}
        )
    # a failed bootstrap keeps the lease (mariadbd may still come up after a timeout: a
    # second bootstrap of this epoch must wait for the lease's TTL)
    await _cmd(
        ctx, decision.node, "galera.bootstrap", {"uuid": decision.uuid, "seqno": decision.seqno}
    )
    await _step(
        ctx, "bootstrap", {"node": decision.node, "position": f"{decision.uuid}:{decision.seqno}"}
    )
    joined = []
    try:
        for node in (n for n in decision.rejoin if n not in held):
            m = members[node]
            start = {"uuid": m.uuid, "seqno": m.seqno} if m.uuid and (m.seqno or -1) >= 0 else {}
            await _cmd(ctx, node, "galera.start", start)
            joined.append(node)
            await _step(ctx, "rejoin", {"node": node, "synced": True})
    finally:
        # there is a Primary component now: the planner refuses any other bootstrap, so the
        # lease is given back (held for its TTL it blocked the recovery of a second crash at
        # the same position for 10 minutes)
        await ctx.effects.release(lease)
    out = {"decision": _d(decision), "bootstrapped": decision.node, "rejoined": joined}
    return {**out, **answered}


async def _ask_past_unreachable(
    ctx: ActionContext,
    ask: Callable[[str, dict[str, Any]], Awaitable[Approval]],
    nodes: list[str],
    held: list[str],
    members: dict[str, Member],
    refused: Decision,
) -> tuple[Decision, dict[str, Any]]:
    """The planner refused because a member is unreachable (its data may be newer): ask a
    person whether to bootstrap from the most advanced *reachable* member anyway. Approved,
    the positions are read again and the same plan must still come out (the situation may
    have changed while a person decided); otherwise the refusal stands, with who said no."""
    unreachable = sorted(m.node for m in members.values() if not m.reachable)
    forced = plan(members, allow_unreachable=True)
    if not unreachable or forced.kind != "bootstrap":
        return refused, {}
    question = (
        f"Galera has no Primary component. Bootstrap {forced.node} from "
        f"{forced.uuid}:{forced.seqno} although {', '.join(unreachable)} cannot be reached "
        "(its data may be newer, and it may even still serve a Primary component of its own; "
        "what it committed since would be lost when it rejoins)?"
    )
    a = await ask(question, {"would": _d(forced), "unreachable": unreachable})
    answer = {"approval": {"id": a.id, "state": a.state, "by": a.by, "reason": a.reason}}
    await _step(ctx, "approval", answer["approval"])
    if not a.granted:
        who = f"by {a.by[:12]}" if a.by else "(no answer)"
        return Decision("refuse", f"{refused.reason}; {a.state} {who}: {a.reason}"), answer
    again = list(await asyncio.gather(*(position(ctx, n) for n in nodes if n not in held)))
    now = {m.node: m for m in again} | {n: Member(n, reachable=False) for n in held}
    redo = plan(now, allow_unreachable=True)
    if (redo.kind, redo.node, redo.uuid, redo.seqno) != (
        forced.kind,
        forced.node,
        forced.uuid,
        forced.seqno,
    ):
        why = f"the positions changed while waiting for the approval (now: {redo.reason})"
        return Decision("refuse", why), answer
    members.clear()
    members.update(now)
    return redo, answer


async def _lease_holder(ctx: ActionContext, lease: str) -> BootstrapLease | None:
    """The plan recorded in a taken epoch lease (None: gone, or not a valid record)."""
    raw = await ctx.effects.lease_record(lease)
    if raw is None:
        return None
    try:
        return decode_bootstrap(raw)
    except DecodeError:
        return None


async def rejoin(ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    """Start one stopped member as a joiner from its own position (refused if running)."""
    node = str(args["node"])
    m = await position(ctx, node)
    if not m.reachable:
        raise ActionFailed(f"{node} does not answer")
    if m.running:
        return {"node": node, "comment": "already running"}
    if ctx.observe:
        return {"observe": True, "would": f"galera.start on {node}"}
    start = {"uuid": m.uuid, "seqno": m.seqno} if m.uuid and (m.seqno or -1) >= 0 else {}
    result = await _cmd(ctx, node, "galera.start", start)
    return {"node": node, "started": result.get("comment")}


def _m(m: Member) -> dict[str, Any]:
    return {
        "reachable": m.reachable,
        "running": m.running,
        "primary": m.primary,
        "uuid": m.uuid,
        "seqno": m.seqno,
        "safe_to_bootstrap": m.safe_to_bootstrap,
    }


def _d(d: Decision) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "reason": d.reason,
        "node": d.node,
        "uuid": d.uuid,
        "seqno": d.seqno,
        "rejoin": list(d.rejoin),
    }


ACTIONS = (
    Action(
        "galera.recover_cluster",
        (
            arg("members", (list,), required=False, doc="node ids (default: the view's)"),
            arg("allow_unreachable", (bool,), required=False),
        ),
        recover_cluster,
    ),
    Action("galera.rejoin", (arg("node", (str,)),), rejoin),
)
