"""Desired state: what every server on every HAProxy should be, from current facts (pure).

The reconciler (master/reactor/convergence/reconciler.py) converges each HAProxy to this, on
every change of the view and periodically -- level-triggered, so nothing depends on having
seen an edge, and a restarted master, a second master or a crossed out/back all end in the
same place.

For every HAProxy node ``H`` whose minion reports its servers, and every server ``S`` that is
a node of the view (the shipped states name servers by node id; any other server is not
hactl's), the administrative state is:

- **galera** backend: ``maint`` (sessions cut) while ``S`` reports its Galera node is not
  Synced; else ``ready``.
- **rabbitmq** backend: ``maint`` (sessions cut) while ``S``'s broker does not answer, or
  reports itself on the minority side of a network partition (it sees at most half of its
  cluster: its queues disagree with the majority's, and ``pause_minority`` is about to stop
  it anyway); ``drain`` while it raises a resource alarm (publishers are blocked: no new
  clients); else ``ready``.
- every other (API) backend: ``drain`` while ``S``'s keepalived is unhealthy (FAULT/STOP, or
  BACKUP at a reduced priority: its own HAProxy check failed); else ``ready``.

Evidence, not silence: a fact counts only from a minion that is heard (not lost, not stopped).
A node nobody hears is ``ready`` -- HAProxy's own health checks (and the minion's agent on
the Galera servers) still take a dead server out; hactl never takes a server out because it
cannot hear. Left alone (held, with the reason): what a maintenance window covers (the server's
component on ``S``, or ``haproxy`` on ``H``), an HAProxy that is not running or whose
minion is not heard, a server whose admin state is unknown or ``disabled`` in the
configuration, and an API drain that would leave a backend without a ready server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hactl.master.reactor.view.cluster import rabbit_minority
from hactl.wire.maint import Maintenance, covering

OUT = ("drain", "maint")
#: the aspect a backend's fact is read from (every other backend: the node's keepalived)
_SOURCE = {"galera": "galera", "rabbitmq": "rabbitmq"}


@dataclass(frozen=True, slots=True)
class Want:
    """One server's desired administrative state on one HAProxy, and the fact behind it."""

    haproxy: str
    backend: str
    server: str
    state: str  # ready / drain / maint
    fact: str
    current: str | None  # its admin state now (None: unknown)
    cut: bool = False  # cut its sessions when taking it out
    held: str = ""  # "<reason>: <detail>" when it is left alone ('' when it may be corrected)
    source: str = ""  # the aspect of ``server`` behind the fact (galera/rabbitmq/vrrp/minion)

    @property
    def key(self) -> str:
        """``H:backend/server``: the unit of damping and audit."""
        return f"{self.haproxy}:{self.backend}/{self.server}"

    @property
    def needed(self) -> bool:
        """A correction is due (not held, and not already so)."""
        return not self.held and self.current != self.state


def component(backend: str) -> str:
    """The maintenance component a backend belongs to (``rabbitmq_tls``, AMQPS through
    HAProxy with internal_tls, is the brokers' like ``rabbitmq``)."""
    if backend in ("rabbitmq", "rabbitmq_tls"):
        return "rabbitmq"
    return backend if backend == "galera" else "api"


def heard(aspects: Mapping[str, Any]) -> bool:
    """The node's minion is heard: its facts are evidence."""
    rec = aspects.get("minion") or {}
    return bool(rec) and not rec.get("lost") and not rec.get("stopped")


def _local(aspects: Mapping[str, Any], aspect: str) -> Mapping[str, Any] | None:
    item = (aspects.get(aspect) or {}).get("local")
    return item if isinstance(item, Mapping) else None


def own_alarms(report: Mapping[str, Any]) -> list[str]:
    """The resource alarms of the reporting broker itself: its local-alarms health check
    (current), else the ones of the cluster's list (``/api/nodes`` statistics, seconds late)
    that name it. Every broker's list holds the whole cluster's (``rabbit@ctl3:mem_alarm`` in
    ctl1's too): read as its own, one alarmed broker drained all three (issue 26)."""
    local = report.get("local_alarms")
    if isinstance(local, list):  # the broker's own health check: current, and its own
        return [str(a) for a in local]
    node = report.get("node")
    return [a for a in report.get("alarms") or [] if a.rpartition(":")[0] == node]


def _node_want(
    backend: str, node: str, aspects: Mapping[str, Any], unhealthy: bool
) -> tuple[str, str, bool]:
    """(state, fact, cut) for ``node``'s server in ``backend``, from its own facts."""
    if not heard(aspects):
        return "ready", f"{node}: minion not heard (no evidence: HAProxy's checks decide)", False
    if backend == "galera":
        g = _local(aspects, "galera")
        if g is not None and not g.get("synced"):
            what = g.get("local_state_comment") or ("stopped" if not g.get("running") else "?")
            return "maint", f"{node}: Galera not Synced ({what})", True
        return "ready", f"{node}: Galera Synced" if g else f"{node}: no Galera facts", False
    if component(backend) == "rabbitmq":
        r = _local(aspects, "rabbitmq")
        if r is not None and not r.get("running"):
            return "maint", f"{node}: broker not answering ({r.get('detail') or 'down'})", True
        if r is not None and (cut_from := rabbit_minority(r)):
            return "maint", f"{node}: broker in a minority partition (cut from {cut_from})", True
        if r is not None and (alarms := own_alarms(r)):
            return "drain", f"{node}: broker alarm {','.join(alarms)[:100]}", False
        return "ready", f"{node}: broker running" if r else f"{node}: no RabbitMQ facts", False
    if unhealthy:
        return "drain", f"{node}: keepalived unhealthy (lost its VIP or its HAProxy check)", False
    return "ready", f"{node}: healthy", False


def desired(
    nodes: Mapping[str, Mapping[str, Any]],
    vrrp_health: Mapping[str, Mapping[str, Mapping[str, Any]]],
    maintenance: Sequence[Maintenance] = (),
    trusted: str = "",
) -> list[Want]:
    """Every managed server on every HAProxy, with its desired state (sorted by key).

    ``vrrp_health`` is the view's per-node, per-instance health; ``trusted`` is why this
    master cannot trust its facts right now ('' when it can): then nothing is taken out."""
    unhealthy = {
        n
        for n, insts in vrrp_health.items()
        if insts and not all(i.get("healthy") for i in insts.values())
    }
    wants: list[Want] = []
    for h, aspects in sorted(nodes.items()):
        items = aspects.get("haproxy") or {}
        if not items:
            continue
        daemon = items.get("_haproxy") or {}
        held_h = ""
        if not heard(aspects):
            held_h = f"not_heard: the minion of {h}"
        elif not daemon.get("running", True):
            held_h = f"not_running: HAProxy on {h}"
        elif (w := covering(maintenance, h, "haproxy")) is not None:
            held_h = f"maintenance: {w.node}/{w.component} ({w.reason})"[:200]
        rows = sorted(
            (str(v["backend"]), str(v["server"]), v.get("admin"))
            for k, v in items.items()
            if not k.startswith("_")
            and isinstance(v, Mapping)
            and v.get("server") in nodes
            and isinstance(v.get("backend"), str)
        )
        for backend, server, admin in rows:
            state, fact, cut = _node_want(backend, server, nodes[server], server in unhealthy)
            held = held_h
            if not held and (w := covering(maintenance, server, component(backend))):
                held = f"maintenance: {w.node}/{w.component} ({w.reason})"[:200]
            if not held and admin not in ("ready", "drain", "maint"):
                held = f"admin_state: {admin or 'unknown'}"
            if not held and state in OUT and trusted:
                held = f"untrusted: {trusted}"
            source = (
                "minion" if not heard(nodes[server]) else _SOURCE.get(component(backend), "vrrp")
            )
            wants.append(Want(h, backend, server, state, fact, admin, cut, held, source))
    return _keep_one_ready(wants)


def _keep_one_ready(wants: list[Want]) -> list[Want]:
    """An API drain that would leave its backend on that HAProxy with no ready server is held:
    keepalived unhealthy everywhere says more about the network than about the services."""
    by_backend: dict[tuple[str, str], list[Want]] = {}
    for w in wants:
        by_backend.setdefault((w.haproxy, w.backend), []).append(w)
    out = []
    for w in wants:
        empty = not any(p.state == "ready" for p in by_backend[(w.haproxy, w.backend)])
        if w.state == "drain" and component(w.backend) == "api" and not w.held and empty:
            out.append(replace(w, held="last_ready: the backend would have no ready server"))
        else:
            out.append(w)
    return out
