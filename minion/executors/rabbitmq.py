"""``rabbitmq.forget_node``: remove a dead member from the cluster, through rabbitmqctl.

Only this verb, only a well-formed node name, never the local node itself. The CLI and its
environment (``HOME`` holding the Erlang cookie, in the lab) come from minion.yaml.
"""

from __future__ import annotations

import re
from typing import Any

from hactl.minion.executors.base import Arg, CommandRefused, ExecContext, Executor
from hactl.minion.executors.proc import run_argv

_NODE = re.compile(r"^[A-Za-z0-9_-]{1,64}@[A-Za-z0-9_.-]{1,253}\Z")


async def forget_node(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """``rabbitmqctl -n <local> forget_cluster_node <node>``."""
    r = ctx.rabbitmq
    if r is None:
        raise CommandRefused("rabbitmq.forget_node", "no rabbitmq section in minion.yaml")
    node = args["node"]
    if not _NODE.match(node):
        raise CommandRefused("rabbitmq.forget_node", f"bad node name {node!r}")
    if node == r.node:
        raise CommandRefused("rabbitmq.forget_node", "a node cannot forget itself")
    res = await run_argv(
        [*r.rabbitmqctl, "-n", r.node, "forget_cluster_node", node], ctx.command_timeout, r.env
    )
    return {
        "result": res.code == 0,
        "changes": {"forgotten": node} if res.code == 0 else {},
        "comment": res.output[-2000:] or f"exit {res.code}",
    }


RABBITMQ_FORGET_NODE = Executor(
    name="rabbitmq.forget_node", args=(Arg("node", (str,)),), body=forget_node
)
