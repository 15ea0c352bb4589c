"""Site-level checks of the pillar, run at compile time: mistakes the seeds warn about.

- VRRP priorities must be unique per VIP (else two nodes tie and the VIP can flap);
- the track-script weight must exceed the priority spread (seed 002: with priorities
  102/132/162 and weight 10, a node whose HAProxy died can still out-rank the others);
- a ``virtual_router_id`` must not be reused (two instances would fight over one VRID);
- two frontends must not bind the same address:port;
- a service must have at least one backend node;
- a VIP is an IPv4 address (IPv6 VIPs are refused, docs/decisions.md 47).
Each finding names the pillar file and line that set the offending value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hactl.errors import StateError
from hactl.master.states.tree import Tree


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint error: what, and where in the pillar."""

    detail: str
    file: str
    line: int | None

    def error(self) -> StateError:
        """As an exception (the compiler stops on the first finding)."""
        return StateError(self.detail, file=self.file, line=self.line, state="lint")


def _priority(tree: Tree, vip: Mapping[str, Any], node_id: str) -> Any:
    return (vip.get("priorities") or {}).get(node_id, tree.nodes[node_id].data.get("priority"))


def _address_problem(address: Any, what: str = "VIP") -> str | None:
    """Why ``address`` cannot be a VIP (or a node's address), or None."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return f"address {address!r} is not an IP address"
    if ip.version == 6:
        return (
            f"{address} is IPv6: hactl runs IPv4 VIPs and nodes only (after a move it announces "
            "a VIP by gratuitous ARP and moves its clients' connections by IPv4; an IPv6 VIP "
            "would render, then fail to bind on the backups and strand clients). Use an IPv4 "
            f"{what} (docs/decisions.md 47)"
        )
    return None


def _addresses(tree: Tree, vips: Mapping[str, Any], add: Callable[..., None]) -> None:
    """Every node's address and every VIP an IPv4 address."""
    for node in sorted(tree.nodes.values(), key=lambda n: n.id):
        if (problem := _address_problem(node.address, "address")) is not None:
            add(f"nodes.{node.id}: {problem}", "nodes", node.id)
    for name, vip in sorted(vips.items()):
        if (problem := _address_problem(vip.get("address"))) is not None:
            add(f"vips.{name}: {problem}", "vips", name, "address")


def lint(tree: Tree) -> list[Finding]:
    """Every finding for the tree's pillar (empty when the site is sound)."""
    p = tree.pillar
    out: list[Finding] = []

    def add(detail: str, *path: str | int) -> None:
        out.append(Finding(detail, *tree.where(*path)))

    vips: Mapping[str, Any] = p.get("vips") or {}
    _addresses(tree, vips, add)
    keepers = [n.id for n in tree.nodes.values() if "keepalived" in n.roles]
    vrids: dict[Any, str] = {}
    for name, vip in sorted(vips.items()):
        vrid = vip.get("virtual_router_id")
        if vrid in vrids:
            add(
                f"vips.{name}: virtual_router_id {vrid} is also used by vips.{vrids[vrid]}",
                "vips",
                name,
                "virtual_router_id",
            )
        vrids[vrid] = name
        prios: dict[Any, str] = {}
        for node_id in sorted(keepers):
            prio = _priority(tree, vip, node_id)
            if not isinstance(prio, int) or not 1 <= prio <= 254:
                add(
                    f"nodes.{node_id}: VRRP priority must be an integer 1..254 (vips.{name})",
                    "nodes",
                    node_id,
                )
                continue
            if prio in prios:
                add(
                    f"vips.{name}: priority {prio} of {node_id} is also {prios[prio]}'s; "
                    "priorities must be unique",
                    "nodes",
                    node_id,
                    "priority",
                )
            prios[prio] = node_id
        weight = (p.get("keepalived") or {}).get("check_weight")
        if len(prios) > 1 and isinstance(weight, int):
            spread = max(prios) - min(prios)
            if weight <= spread:
                add(
                    f"keepalived.check_weight {weight} must exceed the priority spread {spread} "
                    f"of vips.{name} ({min(prios)}..{max(prios)}): a node whose HAProxy failed "
                    "would keep the VIP",
                    "keepalived",
                    "check_weight",
                )
    binds: dict[tuple[str, int], str] = {}

    def bind(addr: str, port: Any, owner: str, *path: str | int) -> None:
        key = (addr, port)
        if key in binds:
            add(f"{owner}: {addr}:{port} is already bound by {binds[key]}", *path)
        binds[key] = owner

    internal = (vips.get("internal") or {}).get("address")
    external = (vips.get("external") or {}).get("address")
    for i, svc in enumerate(p.get("services") or []):
        name = svc.get("name", f"#{i}")
        if internal:
            bind(internal, svc.get("port"), f"service {name}", "services", i)
        if external and svc.get("external"):
            bind(external, svc.get("port"), f"service {name} (external)", "services", i)
        role = svc.get("role", "api")
        if not any(role in n.roles for n in tree.nodes.values()):
            add(f"service {name} has no backends: no node has role {role!r}", "services", i)
    for comp in ("galera", "rabbitmq"):
        conf = p.get(comp) or {}
        if internal and "port" in conf:
            bind(internal, conf["port"], comp, comp, "port")
    writer = (p.get("galera") or {}).get("writer")
    members = {n.id for n in tree.nodes.values() if "galera" in n.roles}
    if writer is not None and members and writer not in members:
        add(f"galera.writer {writer!r} is not a node with role galera", "galera", "writer")
    return out
