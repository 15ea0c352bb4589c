"""Where a singleton should run, from current facts (pure).

The master grants a singleton's lease only when nobody holds it; this module answers two
questions each pass: must the holder give it up (:func:`revoke_reason`), and, when nobody holds
it, who gets it (:func:`choose`). Pacemaker's placement, reduced to what the seeds use:
allowed nodes (``nodes``), a preference order (location scores), a colocation with a VIP holder
(``with_vip``), a failure threshold with an expiry (``migration-threshold``,
``failure-timeout``), standby (maintenance) and ``crm resource move``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hactl.wire.singleton import SingletonSpec


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the master knows of one node for one singleton: heard renewing recently, its
    failure count (its own report), and whether maintenance covers it."""

    node: str
    heard: bool
    failures: int = 0
    maintenance: str = ""  # the window's reason ('' = none)


def eligible(spec: SingletonSpec, c: Candidate) -> str:
    """Why ``c`` may not get the lease ('' when it may)."""
    if c.node not in spec.nodes:
        return f"{c.node} is not among the singleton's nodes"
    if not c.heard:
        return f"{c.node} is not renewing (minion silent or not configured)"
    if c.failures >= spec.failures:
        return f"{c.node} failed it {c.failures} times (threshold {spec.failures})"
    if c.maintenance:
        return f"{c.node} is in maintenance ({c.maintenance})"
    return ""


def choose(
    spec: SingletonSpec,
    candidates: Mapping[str, Candidate],
    *,
    vip_holder: str = "",
    target: str = "",
) -> tuple[str, str]:
    """(node, why) for a free singleton; ('', why not) when no node is eligible. Order: the
    operator's move target, the holder of ``with_vip``, then ``prefer``, then the remaining
    allowed nodes by id."""
    ok = [n for n in spec.nodes if n in candidates and not eligible(spec, candidates[n])]
    if not ok:
        why = "; ".join(eligible(spec, candidates.get(n, Candidate(n, False))) for n in spec.nodes)
        return "", f"no eligible node: {why}"
    if target and target in ok:
        return target, f"moved to {target} by an operator"
    if spec.with_vip and vip_holder in ok:
        return vip_holder, f"{vip_holder} holds {spec.with_vip}"
    for n in spec.prefer:
        if n in ok:
            return n, f"{n} is the first preferred eligible node"
    first = sorted(ok)[0]
    return first, f"{first} is the first eligible node"


def revoke_reason(
    spec: SingletonSpec, holder: Candidate, *, target: str = "", target_ok: bool = False
) -> str:
    """Why the current holder must give the singleton up now ('' when it keeps it): it left
    the allowed nodes, reached the failure threshold, went into maintenance, or an operator
    moves it to another eligible node."""
    if holder.node not in spec.nodes:
        return f"{holder.node} is no longer among the singleton's nodes"
    if holder.failures >= spec.failures:
        return f"failed {holder.failures} times on {holder.node} (threshold {spec.failures})"
    if holder.maintenance:
        return f"{holder.node} is in maintenance ({holder.maintenance})"
    if target and target != holder.node and target_ok:
        return f"an operator moves it to {target}"
    return ""


def vip_holders(nodes: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """VRRP instance -> the node whose vrrp beacon says it holds the instance's VIPs (the
    first by id when two do: a split brain the reconciler is resolving)."""
    out: dict[str, str] = {}
    for node, aspects in sorted(nodes.items()):
        insts = aspects.get("vrrp")
        if not isinstance(insts, Mapping):
            continue
        for name, inst in insts.items():
            if isinstance(inst, Mapping) and inst.get("vip_here") and not str(name).startswith("_"):
                out.setdefault(str(name), node)
    return out
