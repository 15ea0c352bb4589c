"""``rabbitmq.member`` (a state resource): this node's broker belongs to the site's RabbitMQ
cluster, not to the standalone broker Debian's package started at install.

``apt install rabbitmq-server`` starts a broker at once, with an Erlang cookie of its own (made
at that first start) and a database whose cluster is this node alone. A broker that has a
database never runs peer discovery again, so the cluster rabbitmq.conf names
(``classic_config``) never forms by itself on a real controller: the seeds' guides stop the
broker, copy the cookie and ``join_cluster`` by hand. This resource runs after the cookie and
the config are written and before the broker's ``service.running``:

- no database yet (a broker never started here): nothing to do; its first start runs peer
  discovery;
- a database whose cluster names another node: a member; nothing to do (a member that is down
  is the supervisor's and the reactor's, never this resource's);
- a database of this node alone -- the package's standalone broker --, holding no queue data
  (no quorum queue, no classic queue index, no stored persistent message: a fresh install holds
  none; anything else is an operator's single-node broker, refused): every node but the
  ``seed`` first waits (up to ``timeout``) until a peer's broker answers with the site's
  cookie, so its peer discovery joins that cluster and never forms a second one; then the
  broker is stopped (its supervision held) and its database moved aside, kept as
  ``<node>.standalone-<UTC time>``. The ``service.running`` that follows starts it, and peer
  discovery joins it to the cluster.

Only the node's own files are read, never through the broker: the package's broker runs with
the package's cookie, which the state ``rabbitmq_cookie`` has just replaced.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from hactl.log import get_logger
from hactl.minion.executors.base import (
    Arg,
    CommandRefused,
    ExecContext,
    Executor,
    RabbitSettings,
)
from hactl.minion.executors.files import apply as file_apply
from hactl.minion.executors.proc import run_argv
from hactl.minion.executors.runtime import service_action, service_running

log = get_logger("hactl.minion")
Result = dict[str, Any]
NODE = re.compile(r"^[A-Za-z0-9_-]{1,64}@[A-Za-z0-9_.-]{1,253}\Z")
_LISTED = re.compile(r"'?([A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+)'?")
PEER_PROBE = 5  # s: rabbitmqctl await_startup's own timeout per peer and round

ARGS: dict[str, Executor] = {
    "rabbitmq.member": Executor(
        "rabbitmq.member",
        (
            Arg("service", (str,)),
            Arg("peers", (list,)),
            Arg("seed", (bool,), required=False, default=False),
            Arg("timeout", (int,), required=False, default=300, between=(1, 3600)),
        ),
        file_apply,  # the schema only: member() does the work
    )
}


def settings(ctx: ExecContext, args: dict[str, Any]) -> RabbitSettings:
    """This minion's rabbitmq section, and the resource's peers checked (before any resource
    of the plan runs)."""
    r = ctx.rabbitmq
    if r is None:
        raise CommandRefused("rabbitmq.member", "no rabbitmq section in this minion's minion.yaml")
    bad = [p for p in args["peers"] if not isinstance(p, str) or not NODE.match(p)]
    if bad:
        raise CommandRefused("rabbitmq.member", f"peers are node names (rabbit@host): {bad}")
    if args["service"] not in ctx.services:
        raise CommandRefused(
            "rabbitmq.member", f"service {args['service']!r} is not configured on this minion"
        )
    return r


def cluster_nodes(node_dir: Path) -> list[str] | None:
    """The nodes of the cluster this node's database belongs to, from its
    ``cluster_nodes.config`` (``{AllNodes, DiscNodes}.``); None when there is no database; []
    when a database has no such file (a first boot that never finished)."""
    if not node_dir.is_dir():
        return None
    try:
        text = (node_dir / "cluster_nodes.config").read_text()
    except FileNotFoundError:
        return []
    first = re.match(r"\s*\{\s*\[(.*?)\]", text, re.S)
    return _LISTED.findall(first.group(1)) if first else []


def held_data(node_dir: Path, node: str) -> list[str]:
    """What the database holds that a fresh install does not: quorum queues (their Ra
    folders), classic queue indexes, persistent messages in a message store."""
    found = [f"quorum queue {p.name}" for p in (node_dir / "quorum" / node).glob("*") if p.is_dir()]
    found += [f"classic queue {p.name}" for p in node_dir.glob("msg_stores/vhosts/*/queues/*")]
    found += [
        f"persistent messages in {p.parent.parent.name}"
        for p in node_dir.glob("msg_stores/vhosts/*/msg_store_persistent/*.rdq")
        if p.stat().st_size > 0
    ]
    return found


async def _peer_running(r: RabbitSettings, peers: list[str]) -> str | None:
    """The first peer whose broker answers with the site's cookie and has booted."""
    for peer in peers:
        argv = [*r.rabbitmqctl, "-q", "-n", peer, "await_startup", "--timeout", str(PEER_PROBE)]
        if (await run_argv(argv, PEER_PROBE + 15, r.env)).code == 0:
            return peer
    return None


async def _stopped(ctx: ExecContext, service: str) -> str:
    """Stop the service; why it still runs ('' when it is gone). The stop itself waits until
    the daemon is gone (systemctl stop, or the minion's stop_waited). The caller holds its
    supervision throughout."""
    # no drain (pre_stop): the package's standalone broker serves no client, and its drain
    # would speak to it with the cluster's cookie it was not started with
    ok, out = await service_action(ctx, service, "stop", drain=False)
    if await service_running(ctx, service):
        return f"{service} still runs after its stop: {out[-300:]}"
    if not ok:  # a stop command that failed yet stopped it (Debian's ExecStop asks
        # rabbitmqctl, which no longer has the broker's cookie; systemd then sends SIGTERM)
        log.info("rabbitmq_stop_command_failed", service=service, output=out[-300:])
    return ""


def _move_aside(node_dir: Path) -> str:
    """Move the database (and its feature-flags file) aside; the name it was kept under."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = node_dir.with_name(f"{node_dir.name}.standalone-{stamp}")
    node_dir.rename(kept)
    flags = node_dir.with_name(f"{node_dir.name}-feature_flags")
    if flags.exists():
        flags.rename(kept.with_name(f"{kept.name}-feature_flags"))
    return str(kept)


async def member(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    """Make this node's broker a member of the site's cluster (see the module's doc)."""
    r = settings(ctx, args)
    node_dir = Path(r.node_dir)
    nodes = cluster_nodes(node_dir)
    if nodes is None:
        return {
            "result": True,
            "changes": {},
            "comment": "no database yet: its first start runs peer discovery",
        }
    others = [n for n in nodes if n != r.node]
    if others:
        return {"result": True, "changes": {}, "comment": f"a member with {', '.join(others)}"}
    if not nodes:
        why = (
            f"{node_dir} has no cluster_nodes.config: cannot tell whether it ever "
            "clustered; move it aside by hand if it holds nothing"
        )
        return {"result": False, "changes": {}, "comment": why}
    held = held_data(node_dir, r.node)
    if held:
        why = (
            f"{r.node} is a standalone broker that holds data ({'; '.join(held[:5])}): "
            "not the package's fresh broker; join it to the cluster by hand"
        )
        return {"result": False, "changes": {}, "comment": why}
    change = {"standalone": r.node}
    if test:
        return {
            "result": None,
            "changes": change,
            "comment": "would stop the package's standalone broker and move its database aside",
        }
    joins: str | None = None
    if not args["seed"]:
        deadline = time.monotonic() + args["timeout"]
        while (joins := await _peer_running(r, list(args["peers"]))) is None:
            if time.monotonic() > deadline:
                why = (
                    f"no peer's broker ({', '.join(args['peers'])}) answered with the "
                    f"site's cookie within {args['timeout']} s: started now, this broker "
                    "would form a second cluster"
                )
                return {"result": False, "changes": {}, "comment": why}
            await asyncio.sleep(2.0)
    # supervision held from the stop until the database is aside: a supervisor that started
    # the broker in between would boot the old database again (seen in the lab)
    hold = ctx.planned.hold(args["service"], "rabbitmq.member", running_after=False)
    async with hold:
        if await service_running(ctx, args["service"]) and (
            why := await _stopped(ctx, args["service"])
        ):
            return {"result": False, "changes": {}, "comment": why}
        kept = await asyncio.to_thread(_move_aside, node_dir)
    after = f"joins {joins}'s cluster" if joins else "forms the cluster (seed)"
    return {
        "result": True,
        "changes": {**change, "kept": kept},
        "comment": f"the package's standalone broker stopped, its database kept as {kept}; "
        f"its next start {after} by peer discovery",
    }


__all__ = ["ARGS", "cluster_nodes", "held_data", "member", "settings"]
