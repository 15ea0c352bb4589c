"""Rolling apply: ``hactl apply --batch N``, one batch of nodes at a time behind a health gate.

A config change that restarts a daemon on every node at once (every broker of a RabbitMQ
cluster, every Galera member) is an outage; Salt's ``--batch-size`` rolls but does not stop a
batch on failure (saltstack/salt#54521). Here: the nodes in a stable order, ``batch`` at a
time; after each batch the cluster view (the masters' KV) must pass the gate within ``wait``
before the next batch starts; the first failed minion or a gate that does not hold stops the
roll and says where. The default gate: every server UP on every HAProxy, every Galera member
Synced, every broker running, no minion lost. ``--gate EXPR`` replaces it with a rule-style
expression over ``cluster`` (docs/reactor.md, "The vocabulary").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hactl.errors import HactlError
from hactl.master.states.compile import Plan

Facts = Mapping[str, Any]


class GateError(HactlError):
    """A gate expression that cannot be compiled."""


def default_gate(facts: Facts) -> str:
    """'' when the cluster is healthy, else why not (the first problem found)."""
    if facts["lost"]:
        return f"minions lost: {', '.join(facts['lost'])}"
    for node, aspects in sorted(facts["nodes"].items()):
        for item in (aspects.get("haproxy") or {}).values():
            if (
                isinstance(item, Mapping)
                and item.get("server") not in ("BACKEND", None)
                and item.get("status") != "UP"
            ):
                server = f"{item.get('backend')}/{item.get('server')}"
                return f"{server} is {item.get('status')} on {node}"
    galera = facts["galera"]
    if missing := sorted(set(galera["members"]) - set(galera["synced"])):
        return f"Galera not Synced on {', '.join(missing)}"
    if facts["rabbitmq"]["down"]:
        return f"RabbitMQ down on {', '.join(facts['rabbitmq']['down'])}"
    return ""


def expression_gate(source: str) -> Callable[[Facts], str]:
    """A ``--gate`` expression over ``cluster``: '' when it is truthy."""
    from hactl.master.reactor.rules.rule import Expr, environment  # noqa: PLC0415 - only with --gate

    try:
        expr = Expr(environment(), source)
    except Exception as exc:  # jinja's syntax errors, reported as one line
        raise GateError(f"--gate {source!r}: {exc}") from None

    def gate(facts: Facts) -> str:
        try:
            ctx = {"cluster": facts, "batch": facts.get("batch") or {}}
            return "" if expr(ctx) else f"{source} is false"
        except Exception as exc:  # an undefined name while the view fills: not yet
            return f"{source}: {type(exc).__name__}: {exc}"[:200]

    return gate


def batch_facts(facts: Facts, group: Sequence[str]) -> dict[str, Any]:
    """What a gate may ask about the batch just applied (``batch.*`` in a gate expression):
    its nodes, and whether each of them runs its broker / is Synced (computed here, so a gate
    reads like a rule condition: ``batch.rabbitmq_running and not cluster.lost``)."""
    rabbit = set((facts.get("rabbitmq") or {}).get("running") or ())
    synced = set((facts.get("galera") or {}).get("synced") or ())
    return {
        "nodes": list(group),
        "rabbitmq_running": all(n in rabbit for n in group),
        "galera_synced": all(n in synced for n in group),
    }


def batches(nodes: Sequence[str], size: int) -> list[list[str]]:
    """``nodes`` (sorted) in groups of ``size`` (0: one group)."""
    ordered = sorted(nodes)
    if size <= 0:
        return [ordered]
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a roll stopped early ('' when every batch went through)."""

    batch: int
    nodes: tuple[str, ...]
    why: str


async def roll(
    nodes: Sequence[str],
    size: int,
    apply_batch: Callable[[list[str]], Awaitable[bool]],
    read_facts: Callable[[], Awaitable[Facts]],
    gate: Callable[[Facts], str],
    wait: float,
    poll: float = 1.0,
    say: Callable[[str], None] = lambda _m: None,
    disturbed: Callable[[list[str]], bool] = lambda _g: True,
) -> Stop | None:
    """Apply batch after batch; between them wait for ``gate`` (at most ``wait`` s). The
    first failed batch or unhealthy wait stops the roll (returned); None when all went.
    ``disturbed(batch)`` False (nothing was started, restarted or reloaded there) skips the
    wait: an unchanged config needs no health check."""
    groups = batches(nodes, size)
    for i, group in enumerate(groups, 1):
        say(f"batch {i}/{len(groups)}: {', '.join(group)}")
        if not await apply_batch(group):
            return Stop(i, tuple(group), "a minion failed (see its results)")
        if i == len(groups):
            break
        if not disturbed(group):
            say(f"batch {i}: no service started, restarted or reloaded: no wait")
            continue
        deadline = time.monotonic() + wait
        why = "?"
        while True:
            facts = await read_facts()
            heard = facts.get("nodes") or {}
            unknown = [n for n in group if not (heard.get(n) or {}).get("minion")]
            # silence is not health: a batch the view has not heard from does not pass
            why = f"no view of {', '.join(unknown)} (is a master running?)" if unknown else ""
            why = why or gate({**facts, "batch": batch_facts(facts, group)})
            if not why:
                break
            if time.monotonic() >= deadline:
                return Stop(i, tuple(group), f"the gate did not hold within {wait:g} s: {why}")
            await asyncio.sleep(poll)
        say(f"batch {i} healthy")
    return None


def split_rolling(
    plans: Mapping[str, Plan], rolling: Mapping[str, int]
) -> tuple[dict[str, Plan], dict[str, Plan], int]:
    """(what applies everywhere at once, what must roll, the batch) for a plain apply: the
    resources of the states that declared they must roll are taken out of each plan into a
    second one; the batch is the smallest one declared among the states present."""
    now, later, batches = {}, {}, []
    for node, plan in plans.items():
        fixed = tuple(r for r in plan.resources if r.state not in rolling)
        moving = tuple(r for r in plan.resources if r.state in rolling)
        now[node] = replace(plan, resources=fixed)
        if moving:
            later[node] = replace(plan, resources=moving)
            batches += [rolling[r.state] for r in moving]
    return now, later, min(batches, default=1)


SERVICE_CHANGES = frozenset({"start", "restart", "reload"})


def disturbed_states(results: Sequence[Any], group: Sequence[str]) -> set[str]:
    """The states whose services the results (MinionResult) of ``group`` started, restarted
    or reloaded; ``"*"`` for a failed or unanswered minion (its state is unknown: every gate)."""
    out: set[str] = set()
    for r in results:
        if r.minion not in group:
            continue
        if r.status != "ok":
            out.add("*")
            continue
        for res in r.resources:
            if SERVICE_CHANGES & set(res.get("changes") or {}):
                out.add(str(res.get("state") or "*"))
    return out


def disturbed_by(results: Sequence[Any], group: Sequence[str]) -> bool:
    """Whether the results (MinionResult) of ``group`` started, restarted or reloaded any
    service (a failed or unanswered minion counts as disturbed: its state is unknown)."""
    return bool(disturbed_states(results, group))


def state_gates(
    gates: Mapping[str, Callable[[Facts], str]], disturbed: Callable[[], set[str]]
) -> Callable[[Facts], str]:
    """The gate of a declared roll: the gate of each state whose service the last batch
    started, restarted or reloaded (all of them when a minion's outcome is unknown) -- a
    Keystone restarted in a batch waits for Keystone's gate, not for brokers that a first
    deployment has not started yet."""

    def check(facts: Facts) -> str:
        which = disturbed()
        names = sorted(gates) if "*" in which else sorted(s for s in which if s in gates)
        for name in names:
            if why := gates[name](facts):
                return f"{name}: {why}"
        return ""

    return check
