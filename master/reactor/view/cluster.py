"""The cluster view: the latest facts per node, built from beacon and minion events.

Pure data (no I/O): :meth:`ClusterView.update` folds one event in and returns the keys that
changed, which the runtime mirrors into the JetStream KV bucket ``HACTL_CLUSTER``
(hactl/bus/viewstore.py, key ``node.<id>.<aspect>``) so that every master, ``hactl status``
and a restarted master share it. :meth:`ClusterView.facts` is what rules see as ``cluster``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hactl.bus.viewstore import ASPECTS
from hactl.wire.beacons import check_items
from hactl.wire.envelope import Event
from hactl.wire.tags import parse_tag


def _opt(value: Any, *types: type) -> bool:
    return value is None or (
        isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    )


def admissible(aspect: str, value: Any) -> str:
    """Why ``value`` may not enter the view as ``aspect`` ('' when it may).

    The view is typed at its boundary: a beacon's items by the beacon contract
    (hactl/wire/beacons.py), the minion's liveness record here. One malformed beacon event
    (``vips: [[1]]``) once made every later event's facts raise, and the bad value, saved in
    KV, came back after a restart. Whatever fails here is not stored (from an event or from
    KV) and is counted by the caller."""
    if aspect == "minion":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            return "minion: not a map"
        if unknown := sorted(set(value) - _MINION_FIELDS):
            return f"minion: unknown field {unknown[0][:40]!r}"
        roles = value.get("roles")
        ok = (
            _opt(value.get("last_seen"), int, float)
            and all(_opt(value.get(k), bool) for k in ("lost", "stopped", "skewed"))
            and _opt(value.get("skew"), int, float)
            and (
                roles is None
                or (
                    isinstance(roles, list)
                    and len(roles) <= 64
                    and all(isinstance(r, str) for r in roles)
                )
            )
        )
        return "" if ok else "minion: last_seen/skew numbers, lost/stopped booleans, roles strings"
    if aspect not in ASPECTS:
        return f"{aspect}: not an aspect"
    return check_items(aspect, value)


_MINION_FIELDS = frozenset({"last_seen", "lost", "stopped", "roles", "skew", "skewed"})
MAX_NODES = 1024
#: how many of a node's latest event ids the view remembers to refuse a replay (at the
#: shipped rates about 2 hours of one node's heartbeats and beacon changes)
REPLAY_MEMORY = 1024
#: a minion whose event time is further than this from the server's is reported as skewed
SKEW_LIMIT_S = 5.0  # nodes in the view (the inventory is the set of minion identities)


def heard_before(rec: Any) -> bool:
    """A minion record that says the minion was heard (not lost, not stopped)."""
    return isinstance(rec, dict) and bool(rec) and not rec.get("lost") and not rec.get("stopped")


def rabbit_minority(r: Mapping[str, Any]) -> str:
    """The members a broker cannot see ('' unless it is on a minority side), by its own
    report: RabbitMQ's ``partitions`` (``me|other`` pairs) against its cluster's members."""
    me, members = r.get("node"), r.get("members") or []
    cut = sorted({p.split("|", 1)[1] for p in r.get("partitions") or [] if p.startswith(f"{me}|")})
    if not cut or not members:
        return ""
    return ",".join(cut)[:120] if 2 * (len(members) - len(cut)) <= len(members) else ""


@dataclass
class ClusterView:
    """node -> aspect -> value (the beacon's items, or the minion's liveness record)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per VRRP instance: who is MASTER now and who was before (what "the VIP moved" means)
    vrrp: dict[str, dict[str, str | None]] = field(default_factory=dict)
    # (node, instance) -> highest priority seen: a lower one means a failed track script
    # (keepalived subtracts the weight; the node stays BACKUP, it does not go FAULT)
    base_priority: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # refused values, by aspect
    last_rejection: str = ""
    # (node, aspect) -> when the stream stored the event its value came from (server time)
    as_of: dict[tuple[str, str], float] = field(default_factory=dict)
    # (node, aspect) -> (id, tag, time) of the event that last changed its value: what a
    # decision taken on that fact names as its cause (``hactl why`` follows it); not persisted
    cause: dict[tuple[str, str], tuple[str, str, float]] = field(default_factory=dict)
    # (node, aspect) read back from KV when this master started and not reported since: the
    # last word of a predecessor, not fresh evidence (a new split-brain yield waits for a
    # report; master/reactor/convergence/split_brain.py)
    restored: set[tuple[str, str]] = field(default_factory=set)

    # node -> the ids of its most recent events (REPLAY_MEMORY per node): an event is folded
    # in once, by id -- a stored event published again (a replay) is not news
    seen_ids: dict[str, OrderedDict[str, None]] = field(default_factory=dict)

    def replayed(self, node: str, event_id: str) -> bool:
        """Whether this node's event ``event_id`` was folded in before (and remember it)."""
        ids = self.seen_ids.get(node)
        if ids is None:
            if len(self.seen_ids) >= MAX_NODES:
                return False  # the node cap refuses it in set() anyway
            ids = self.seen_ids[node] = OrderedDict()
        if event_id in ids:
            return True
        ids[event_id] = None
        if len(ids) > REPLAY_MEMORY:
            ids.popitem(last=False)
        return False

    def set(self, node: str, aspect: str, value: Any) -> bool:
        """Store one fact (from the KV or an event); False (nothing stored, counted in
        ``rejected``) when it is not :func:`admissible`."""
        why = admissible(aspect, value)
        if not why and node not in self.nodes and len(self.nodes) >= MAX_NODES:
            why = f"nodes: already {MAX_NODES} nodes in the view"
        if why:
            label = why.split(":")[0].split(".")[0]  # the aspect: a bounded set of counters
            self.rejected[label] = self.rejected.get(label, 0) + 1
            self.last_rejection = f"{node}: {why}"
            return False
        if aspect == "vrrp":
            self._track_masters(node, value)  # a master that starts late learns who held what
        self.nodes.setdefault(node, {})[aspect] = value
        return True

    def older(self, event: Event, now: float | None = None) -> bool:
        """``event`` was stored before the report the view holds for its node and beacon (a
        redelivery to a restarted master): it is not folded in; rules may still act on it
        while the facts they test still hold (:meth:`stale`)."""
        tag = parse_tag(event.tag)
        if tag.kind != "beacon":
            return False
        at = self.as_of.get((tag.name, tag.what))
        return at is not None and (event.ts if now is None else now) < at

    def stale(self, event: Event, fields: frozenset[str] | None = None) -> str:
        """Why the fact behind an action on ``event`` no longer holds ('' while it does): a
        change of one of ``fields`` (a rule's trigger fields; None: every field) that the
        view now says otherwise (``synced`` went back to true), or a ``lost`` verdict about a
        minion heard after the silence it is about. Checked before a rule acts on an older
        event and again when its actions are about to run."""
        tag = parse_tag(event.tag)
        node, what = tag.node, tag.what
        if tag.kind == "minion" and what == "lost":
            rec = self.nodes.get(node, {}).get("minion") or {}
            seen = event.data.get("last_seen")
            if isinstance(seen, int | float) and rec.get("last_seen", 0) > seen:
                return f"{node}'s minion was heard after the silence this verdict is about"
            return ""
        if tag.kind != "beacon" or what not in ASPECTS:
            return ""
        items = self.nodes.get(node, {}).get(what) or {}
        changes = event.data.get("changes")
        for ch in changes if isinstance(changes, list) else []:
            if not isinstance(ch, dict) or not isinstance(ch.get("item"), str):
                continue
            if fields is not None and ch.get("field") not in fields:
                continue
            item = items.get(ch["item"])
            now = item.get(ch.get("field")) if isinstance(item, dict) else None
            if "value" in ch and now != ch["value"]:
                return f"{node} {ch['item']}.{ch.get('field')} is now {now!r}"[:200]
        return ""

    def update(self, event: Event, now: float | None = None) -> list[tuple[str, str]]:
        """Fold ``event`` in (``now``: when the stream stored it); the (node, aspect) pairs
        whose value changed."""
        tag = parse_tag(event.tag)
        kind, node, what = tag.kind, tag.node, tag.what
        if node and self.replayed(node, event.id):
            self.rejected["replayed"] = self.rejected.get("replayed", 0) + 1
            return []
        if kind == "beacon" and what in ASPECTS:
            items = event.data.get("items")
            if not isinstance(items, dict) or self.older(event, now):
                return []
            key = (node, what)
            self.restored.discard(key)  # reported now, change or not
            if key in self.as_of or len(self.as_of) < MAX_NODES * len(ASPECTS):
                self.as_of[key] = event.ts if now is None else now
            if self.nodes.get(node, {}).get(what) == items:
                return []
            if not self.set(node, what, items):
                return []
            self._caused(key, event)
            return [key]
        if kind == "minion":
            rec = dict(self.nodes.get(node, {}).get("minion") or {})
            if what in ("start", "heartbeat"):
                # liveness is timed on the server's clock (the time the stream stored the
                # event), never the minion's own: a clock 30 s behind was declared lost after
                # every heartbeat, one ahead hid a dead minion
                seen = event.ts if now is None else now
                skew = event.ts - seen if now is not None else 0.0
                skew = round(skew, 3) if math.isfinite(skew) and abs(skew) < 1e12 else 1e12
                rec.update(
                    last_seen=seen,
                    lost=False,
                    stopped=False,
                    skew=skew,
                    skewed=abs(skew) > SKEW_LIMIT_S,
                )
                roles = event.data.get("roles")
                if isinstance(roles, list) and all(isinstance(r, str) for r in roles[:64]):
                    rec["roles"] = roles[:64]
                # every heartbeat is persisted: another master (or one that starts later)
                # must know this minion is alive, or it would declare it lost
                back = not heard_before(self.nodes.get(node, {}).get("minion"))
                if not self.set(node, "minion", rec):
                    return []
                if back:  # heard again (or first): that, not every heartbeat, is a cause
                    self._caused((node, "minion"), event)
                return [(node, "minion")]
            if what == "stop":
                rec.update(stopped=True, last_seen=event.ts if now is None else now)
            elif what == "lost":
                if self.stale(event):
                    return []  # heard after the silence this verdict is about
                rec.update(lost=True)
            else:
                return []
            if not self.set(node, "minion", rec):
                return []
            self._caused((node, "minion"), event)
            return [(node, "minion")]
        return []

    def _caused(self, key: tuple[str, str], event: Event) -> None:
        if key in self.cause or len(self.cause) < MAX_NODES * (len(ASPECTS) + 1):
            self.cause[key] = (event.id, event.tag, event.ts)

    def _track_masters(self, node: str, items: dict[str, Any]) -> None:
        for inst, item in items.items():
            if not isinstance(item, dict) or inst.startswith("_"):
                continue
            prio = item.get("priority")
            if isinstance(prio, int):
                key = (node, inst)
                self.base_priority[key] = max(prio, self.base_priority.get(key, prio))
            rec = self.vrrp.setdefault(inst, {"master": None, "previous": None})
            if item.get("state") == "MASTER" and rec["master"] != node:
                if rec["master"] is not None:
                    rec["previous"] = rec["master"]
                rec["master"] = node
            elif item.get("state") != "MASTER" and rec["master"] == node:
                rec["previous"], rec["master"] = node, None

    def _health(self) -> dict[str, dict[str, dict[str, Any]]]:
        """node -> instance -> state, priority, base, healthy (MASTER/BACKUP at full priority,
        or yielding a VIP on hactl's request)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for node, aspects in self.nodes.items():
            for inst, item in (aspects.get("vrrp") or {}).items():
                if not isinstance(item, dict) or inst.startswith("_"):
                    continue
                prio, base = item.get("priority"), self.base_priority.get((node, inst))
                # FAULT because hactl asked it to yield a split-brain VIP is not a fault of
                # the node: its HAProxy and its services stay in
                up = item.get("state") in ("MASTER", "BACKUP") or (
                    item.get("state") == "FAULT" and bool(item.get("yielded"))
                )
                healthy = up and (prio is None or base is None or prio >= base)
                out.setdefault(node, {})[inst] = {
                    "state": item.get("state"),
                    "priority": prio,
                    "base": base,
                    "healthy": healthy,
                }
        return out

    def _maint(self) -> dict[str, list[str]]:
        """backend -> servers in MAINT on at least one HAProxy (every backend listed)."""
        out: dict[str, set[str]] = {}
        for aspects in self.nodes.values():
            for name, item in (aspects.get("haproxy") or {}).items():
                if name.startswith("_") or not isinstance(item, Mapping):
                    continue
                backend, server = item.get("backend"), item.get("server")
                if not isinstance(backend, str) or server == "BACKEND":
                    continue
                servers = out.setdefault(backend, set())
                if item.get("status") == "MAINT" and isinstance(server, str):
                    servers.add(server)
        return {b: sorted(s) for b, s in sorted(out.items())}

    def watched(self) -> int:
        """Minions whose liveness is watched (seen, not lost, not cleanly stopped)."""
        return sum(
            1
            for aspects in self.nodes.values()
            if (rec := aspects.get("minion")) and not rec.get("lost") and not rec.get("stopped")
        )

    def silent(self, now: float, after: float) -> list[str]:
        """Minions not seen for ``after`` seconds, not already lost and not cleanly stopped."""
        out = []
        for node, aspects in sorted(self.nodes.items()):
            rec = aspects.get("minion")
            if not rec or rec.get("lost") or rec.get("stopped"):
                continue
            if now - float(rec.get("last_seen", now)) > after:
                out.append(node)
        return out

    def facts(self) -> dict[str, Any]:
        """What a rule's ``cluster`` is: raw nodes plus derived, ready-to-test facts."""
        vips: dict[str, list[str]] = {}
        galera: dict[str, list[str]] = {
            "members": [],
            "synced": [],
            "primary": [],
            "down": [],
            "positioned": [],
            "disk_full": [],
        }
        rabbit: dict[str, list[str]] = {
            "members": [],
            "running": [],
            "down": [],
            "paused": [],
            "minority": [],
        }
        haproxy_nodes, lost = [], []
        for node, aspects in sorted(self.nodes.items()):
            for inst in (aspects.get("vrrp") or {}).values():
                if isinstance(inst, Mapping) and inst.get("vip_here"):
                    for vip in inst.get("vips") or []:
                        vips.setdefault(vip, []).append(node)
            g = (aspects.get("galera") or {}).get("local")
            if isinstance(g, Mapping):
                galera["members"].append(node)
                if g.get("synced"):
                    galera["synced"].append(node)
                # a silent (lost) minion's last word is not evidence of a Primary component
                # now: the recovery then asks its planner, which sees the member unreachable
                mute = bool((aspects.get("minion") or {}).get("lost"))
                if g.get("running") and g.get("cluster_status") == "Primary" and not mute:
                    galera["primary"].append(node)
                if not g.get("running"):
                    galera["down"].append(node)
                if g.get("running") or g.get("uuid"):  # has a history (not a blank datadir)
                    galera["positioned"].append(node)
                if g.get("disk_full"):
                    galera["disk_full"].append(node)
            r = (aspects.get("rabbitmq") or {}).get("local")
            if isinstance(r, Mapping):
                rabbit["members"].append(node)
                rabbit["running" if r.get("running") else "down"].append(node)
                if not r.get("running") and r.get("process"):  # alive, not answering AMQP
                    rabbit["paused"].append(node)
                if r.get("running") and rabbit_minority(r):  # answering on a minority side
                    rabbit["minority"].append(node)
            if aspects.get("haproxy"):
                haproxy_nodes.append(node)
            if (aspects.get("minion") or {}).get("lost"):
                lost.append(node)
        lost_primary = bool(
            set(galera["members"]) - set(lost)  # someone heard says so, not only silence
            and not galera["primary"]
            and len(galera["positioned"]) == len(galera["members"])
        )
        health = self._health()
        moves = {
            inst: {"instance": inst, "master": rec["master"], "lost": rec["previous"]}
            for inst, rec in sorted(self.vrrp.items())
            if rec["master"]
            and rec["previous"]
            and rec["master"] != rec["previous"]
            and not (health.get(rec["previous"] or "", {}).get(inst) or {}).get("healthy")
        }
        return {
            "nodes": self.nodes,
            "vips": vips,
            "split_brain": sorted(v for v, holders in vips.items() if len(holders) > 1),
            "galera": {**galera, "lost_primary": lost_primary},
            "rabbitmq": {
                **rabbit,
                "majority_running": 2 * len(rabbit["running"]) > len(rabbit["members"]),
                # the brokers that run and are on no minority side are a majority: the side
                # RabbitMQ's recovery trusts when a minority broker restarts and rejoins
                "majority_side": 2 * len(set(rabbit["running"]) - set(rabbit["minority"]))
                > len(rabbit["members"]),
            },
            "haproxy_nodes": haproxy_nodes,
            "vrrp": {k: dict(v) for k, v in self.vrrp.items()},
            "vrrp_health": health,
            "vrrp_healthy": sorted(
                n
                for n, insts in health.items()
                if insts and all(i["healthy"] for i in insts.values())
            ),
            "vrrp_moves": moves,
            "vip_move": next(iter(moves.values()), None),
            "haproxy_maint": self._maint(),
            "lost": lost,
            "ts": time.time(),
        }
