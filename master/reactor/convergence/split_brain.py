"""Split brain: which node should give up a VIP held twice (pure).

A VIP is held by two nodes when VRRP's adverts stop crossing between them (a switch dropping
multicast, a firewall change, a one-way link) while both stay up: each elects itself MASTER
and both answer ARP for the address, so clients land on either at random. keepalived cannot
see it -- that is the fault. hactl's minions report both holders, so the master can.

Policy: among the heard nodes holding an instance's VIPs (MASTER, addresses present, not
already yielding), the one ranked first keeps them -- the one MASTER the longest (the
incumbent: its clients stay where they are; keepalived's ``nopreempt`` keeps a VIP where it
moved, so the holder is often not the highest priority), then the highest reported priority,
then the lowest node id -- and every other holder yields (``vrrp.yield``, hactl/wire/vrrp.py): its
instance goes to FAULT and drops the VIP. A node already yielding keeps yielding only while
another heard node holds the VIP; when none does, its yield ends at once, so hactl never
leaves a VIP without a holder because of its own yield. The reconciler
(master/reactor/convergence/reconciler.py) adds the time: a split must last ``debounce`` (a VIP move
reports the new holder a moment before the old one lets go), a yield lasts a hold that
doubles each time the split comes back, and is renewed while wanted, so it ends by itself
when the master stops renewing it.

Evidence, not memory: a holder counts only while its minion is heard *now* -- seen (any
report or heartbeat, on the stream's clock) within ``fresh`` seconds of the most recently
seen node -- and a split needs every holder heard *after* the newest holder's VRRP report. A
powered-off holder's last report still says MASTER until its minion is declared lost; without
this rule the node that legitimately took its VIP over was made to yield to a dead one (seen
in benchmarks/failover.py: the VIP gone for 10-11 s). Both are comparisons of stored times,
never of the master's own clock.

Held (left alone, with the reason; a held yield is not renewed, so it ends by itself): a node
whose keepalived is under maintenance, and every yield while the master cannot trust its facts
(silence is not evidence). Ending a yield is never held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from hactl.master.reactor.convergence.desired import heard
from hactl.wire.maint import Maintenance, covering


@dataclass(frozen=True, slots=True)
class Yield:
    """Whether one node should be yielding one VRRP instance, and the fact behind it."""

    node: str
    instance: str
    want: bool  # it should be yielding
    yielded: bool  # its minion says it is
    fact: str
    held: str = ""  # "<reason>: <detail>" when it is left alone
    keeper: str = ""  # the node ranked first, which keeps the VIP ('' when none does)
    released: bool = False  # this node no longer has the VIP (its keepalived let it go)
    vips: tuple[str, ...] = ()  # the instance's addresses

    @property
    def key(self) -> str:
        """``node:vrrp/instance``: the unit of damping and audit."""
        return f"{self.node}:vrrp/{self.instance}"


def _rank(entry: tuple[str, Mapping[str, Any]]) -> tuple[float, int, str]:
    """Incumbent first: MASTER since the earliest (each minion's report of its own
    transition), then the highest priority, then the lowest id. A split's newcomer elected
    itself seconds ago; the holder it collides with has served clients for much longer than
    any skew the master tolerates (hactl/minion/<id>/skew)."""
    node, item = entry
    prio, since = item.get("priority"), item.get("since")
    when = float(since) if isinstance(since, int | float) else float("inf")
    return (when, -(prio if isinstance(prio, int) else 0), node)


def _seen(node: str, aspects: Mapping[str, Any], as_of: Mapping[tuple[str, str], float]) -> float:
    """When ``node`` was last heard: its last heartbeat or report (stored time)."""
    rec = aspects.get("minion") or {}
    last = rec.get("last_seen")
    times = [float(last)] if isinstance(last, int | float) else []
    times += [t for (n, _), t in as_of.items() if n == node]
    return max(times, default=0.0)


def split_brain(
    nodes: Mapping[str, Mapping[str, Any]],
    maintenance: Sequence[Maintenance] = (),
    trusted: str = "",
    as_of: Mapping[tuple[str, str], float] | None = None,
    fresh: float = 5.0,
    restored: AbstractSet[tuple[str, str]] = frozenset(),
) -> list[Yield]:
    """Every (node, instance) that should start, keep or end a yield (sorted by key).
    ``as_of``: when each (node, aspect) was last reported (the view's). ``restored``: the
    (node, aspect) pairs the master read back from KV at its start and has not heard since: a
    holder known only from them starts no yield (a restarted master once made a node yield 5
    times on its predecessor's last record of it while the node had been yielding all along)."""
    as_of = as_of or {}
    seen = {n: _seen(n, a, as_of) for n, a in nodes.items() if heard(a)}
    top = max(seen.values(), default=0.0)
    by_inst: dict[str, dict[str, Mapping[str, Any]]] = {}
    for node, aspects in nodes.items():
        if not heard(aspects):
            continue  # silence is not evidence: an unheard node is neither holder nor yielder
        for inst, item in (aspects.get("vrrp") or {}).items():
            if not inst.startswith("_") and isinstance(item, Mapping):
                by_inst.setdefault(inst, {})[node] = item
    out: list[Yield] = []
    for inst, items in sorted(by_inst.items()):
        holders = sorted(
            (
                (n, i)
                for n, i in items.items()
                if i.get("state") == "MASTER"
                and i.get("vip_here")
                and not i.get("yielded")
                and top - seen[n] <= fresh
            ),
            key=_rank,
        )
        newest = max((as_of.get((n, "vrrp"), 0.0) for n, _ in holders), default=0.0)
        confirmed = [
            (n, i) for n, i in holders if seen[n] >= newest and (n, "vrrp") not in restored
        ]
        addresses = tuple(str(v) for v in next(iter(items.values())).get("vips") or [])
        vips = ",".join(addresses) or inst
        for node, item in sorted(items.items()):
            yielded = bool(item.get("yielded"))
            others = [n for n, _ in holders if n != node]
            if yielded:
                want = bool(others)
                fact = (
                    f"{vips} held by {others[0]}: {node} keeps yielding"
                    if want
                    else f"no other node holds {vips}: {node} takes part again"
                )
            elif len(confirmed) > 1 and confirmed[0][0] != node and node in dict(confirmed):
                want = True
                first, best = confirmed[0]
                fact = (
                    f"{vips} held by {', '.join(n for n, _ in confirmed)} at once (split brain):"
                    f" {first} ranks first (MASTER the longest; priority {best.get('priority')}),"
                    f" {node} yields"
                )
            else:
                continue
            held = ""
            if want and (w := covering(maintenance, node, "keepalived")) is not None:
                held = f"maintenance: {w.node}/{w.component} ({w.reason})"[:200]
            elif want and trusted:  # neither a new yield nor a renewal: it ends by itself
                held = f"untrusted: {trusted}"
            keeper = holders[0][0] if holders and holders[0][0] != node else ""
            released = not item.get("vip_here")
            out.append(Yield(node, inst, want, yielded, fact, held, keeper, released, addresses))
    return out
