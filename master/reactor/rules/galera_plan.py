"""The Galera recovery planner: a pure function from member positions to one decision.

Safety invariants (DESIGN.md, after Pacemaker's galera agent, kolla-ansible, ClusterControl):

1. never bootstrap while any reachable node is in a Primary component;
2. only once a position (uuid:seqno) is known for every member -- an unreachable member is a
   refusal unless the operator configured ``allow_unreachable`` (its data may be newer);
3. only from the most advanced node: ``safe_to_bootstrap: 1`` first (Galera marks the last
   node of a clean shutdown), else the highest seqno of the common cluster uuid (ties: the
   lowest node id, so every master decides the same);
4. never across histories: members with different (non-zero) uuids are a refusal;
5. the others rejoin one at a time, most advanced first (each after the previous is Synced --
   the executor's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class Member:
    """What is known of one member. ``reachable``: its minion answered."""

    node: str
    reachable: bool
    running: bool = False
    primary: bool = False
    synced: bool = False
    uuid: str | None = None
    seqno: int | None = None
    safe_to_bootstrap: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """``bootstrap`` (node, uuid, seqno, rejoin order), ``refuse`` (reason) or ``nothing``."""

    kind: str
    reason: str
    node: str = ""
    uuid: str = ""
    seqno: int = -1
    rejoin: tuple[str, ...] = ()


def _refuse(reason: str) -> Decision:
    return Decision("refuse", reason)


def plan(members: Mapping[str, Member], *, allow_unreachable: bool = False) -> Decision:
    """The decision for these members (keys are node ids)."""
    if not members:
        return _refuse("no Galera members known")
    ms = sorted(members.values(), key=lambda m: m.node)
    primary = [m.node for m in ms if m.reachable and m.running and m.primary]
    if primary:
        if all(m.reachable and m.running and m.synced for m in ms):
            return Decision("nothing", f"all {len(ms)} members are Synced in a Primary component")
        return _refuse(
            f"a Primary component exists ({', '.join(primary)}): "
            "rejoin the others instead of bootstrapping"
        )
    unreachable = [m.node for m in ms if not m.reachable]
    if unreachable and not allow_unreachable:
        return _refuse(
            f"position unknown for {', '.join(unreachable)} (unreachable): its data "
            "may be the newest; refusing (allow_unreachable overrides)"
        )
    known = [m for m in ms if m.reachable]
    # an empty node (zero uuid: freshly installed or wiped) has no history to lose
    unknown = [m.node for m in known if m.uuid != ZERO_UUID and not _positioned(m)]
    histories = {m.uuid for m in known if m.uuid and m.uuid != ZERO_UUID}
    if len(histories) > 1:
        by = {u: [m.node for m in known if m.uuid == u] for u in sorted(histories)}
        return _refuse(
            "members have different cluster uuids: "
            + "; ".join(f"{u} on {', '.join(nodes)}" for u, nodes in by.items())
        )
    if unknown:
        return _refuse(
            f"no recovered position for {', '.join(unknown)} "
            "(seqno -1 after --wsrep-recover): it may be the most advanced"
        )
    if not histories:
        return _refuse("no member has a cluster history (all uuids empty or zero)")
    (uuid,) = histories
    ours = [m for m in known if m.uuid == uuid and m.seqno is not None and m.seqno >= 0]
    safe = [m for m in ours if m.safe_to_bootstrap]
    top = max((m.seqno for m in ours if m.seqno is not None), default=-1)
    if safe:
        best = max(safe, key=lambda m: (m.seqno if m.seqno is not None else -1, _neg(m.node)))
        if best.seqno is not None and 0 <= best.seqno < top:
            return _refuse(
                f"{best.node} is marked safe_to_bootstrap at seqno {best.seqno} but "
                f"another member is at {top}: contradictory positions"
            )
        why = f"{best.node} is marked safe_to_bootstrap"
    elif ours:
        best = max(ours, key=lambda m: (m.seqno or 0, _neg(m.node)))
        why = f"{best.node} has the highest seqno {best.seqno} of {uuid}"
    else:
        return _refuse("no usable position")
    seqno = best.seqno if best.seqno is not None and best.seqno >= 0 else -1
    others = sorted(
        (m for m in known if m.node != best.node),
        key=lambda m: (-(m.seqno if m.seqno is not None else -1), m.node),
    )
    return Decision("bootstrap", why, best.node, uuid, seqno, tuple(m.node for m in others))


def _positioned(m: Member) -> bool:
    return m.uuid is not None and m.seqno is not None and m.seqno >= 0


def _neg(node: str) -> tuple[int, ...]:
    """Sort key that makes the lowest node id win a ``max``."""
    return (*(-ord(c) for c in node), 0)
