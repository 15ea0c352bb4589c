"""``rabbitmq.forget_node``: remove a dead member from the cluster, through rabbitmqctl; and
the state resource ``rabbitmq.definitions``: a changed definitions.json imported into the
running broker.

Only these verbs, only a well-formed node name, never the local node itself. The CLI and its
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


#: rabbitmqctl's exit when the node does not answer (EX_UNAVAILABLE)
UNAVAILABLE = 69


async def import_definitions(
    ctx: ExecContext, path: str, changed: bool, test: bool
) -> dict[str, Any]:
    """``rabbitmqctl -n <local> import_definitions <path>`` when the file just changed: a new
    vhost, user or permission reaches the running brokers without a restart. A broker that is
    down (or a minion without a rabbitmq section) gets them at its next start instead: the
    broker's config loads the same file (``load_definitions``)."""
    r = ctx.rabbitmq
    if not changed:
        return {"result": True, "changes": {}, "comment": "definitions unchanged"}
    if r is None:
        why = "no rabbitmq section in minion.yaml: the broker loads them at its next start"
        return {"result": True, "changes": {}, "comment": why}
    if test:
        return {"result": None, "changes": {"import": path}, "comment": "would import them"}
    res = await run_argv(
        [*r.rabbitmqctl, "-n", r.node, "import_definitions", path], ctx.command_timeout, r.env
    )
    if res.code == UNAVAILABLE:
        why = f"{r.node} does not answer: it loads them at its next start"
        return {"result": True, "changes": {}, "comment": why}
    return {
        "result": res.code == 0,
        "changes": {"imported": path} if res.code == 0 else {},
        "comment": res.output[-1000:] or f"exit {res.code}",
    }


RABBITMQ_FORGET_NODE = Executor(
    name="rabbitmq.forget_node", args=(Arg("node", (str,)),), body=forget_node
)
