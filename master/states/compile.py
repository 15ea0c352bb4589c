"""Compile a state tree into an ordered plan for one minion.

For each state that top.yaml assigns to the node: render ``<state>/init.yaml`` through the
sandboxed Jinja (``pillar``, ``grains``, ``minion_id``, ``nodes``, ``paths``), validate every
resource against its type, render ``file.managed`` sources, resolve ``require``/``watch``, and
order the resources (requisites first, otherwise declaration order). A cycle is an error that
names the resources in it.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from hactl import yamlsrc
from hactl.errors import ConfigError, StateError
from hactl.master.states.lint import lint
from hactl.master.states.render import environment, render
from hactl.master.states.resources import REGISTRY, REQUISITES, check_args
from hactl.master.states.tree import Node, Tree


@dataclass(frozen=True, slots=True)
class Resource:
    """One concrete resource for one minion (content rendered, requisites resolved)."""

    id: str
    type: str
    state: str
    args: Mapping[str, Any]
    require: tuple[str, ...] = ()
    watch: tuple[str, ...] = ()
    file: str = ""
    line: int | None = None

    def wire(self) -> dict[str, Any]:
        """What the minion's ``state.apply`` receives."""
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "args": dict(self.args),
            "require": list(self.require),
            "watch": list(self.watch),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered resources for one minion, and the secrets to hide in what comes back."""

    minion: str
    states: tuple[str, ...]
    resources: tuple[Resource, ...]
    secrets: frozenset[str] = field(default_factory=frozenset)

    def files(self) -> dict[str, str]:
        """Rendered file contents by target path."""
        return {
            str(r.args["path"]): str(r.args["contents"])
            for r in self.resources
            if r.type == "file.managed"
        }


def site_context(tree: Tree) -> dict[str, Any]:
    """What is the same for every minion: ``nodes`` (by id) and ``by_role`` (role -> nodes).

    Built once per compile: templates pick backends with ``by_role.get("api", [])`` in
    O(backends) instead of filtering every node for every service (O(nodes^2) per site).
    """
    nodes = [
        {**dict(n.data), "id": n.id, "address": n.address, "roles": list(n.roles)}
        for n in sorted(tree.nodes.values(), key=lambda n: n.id)
    ]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        for role in n["roles"]:
            by_role.setdefault(role, []).append(n)
    return {"pillar": tree.pillar, "nodes": nodes, "by_role": by_role}


def context(tree: Tree, node: Node, site: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template context for ``node``: grains come from the pillar's node entry."""
    paths = {
        k: str(v).replace("{id}", node.id) for k, v in dict(tree.pillar.get("paths") or {}).items()
    }
    grains = {**dict(node.data), "id": node.id, "address": node.address, "roles": list(node.roles)}
    return {**(site or site_context(tree)), "grains": grains, "minion_id": node.id, "paths": paths}


def _resources_of(
    env: ImmutableSandboxedEnvironment, tree: Tree, state: str, ctx: dict[str, Any]
) -> list[Resource]:
    name = f"{state}/init.yaml"
    source = str(tree.root / name)
    text = render(env, name, ctx, state=state)
    try:
        doc = yamlsrc.load(text, source)
    except ConfigError as exc:
        raise StateError(
            f"{exc.detail} (in the rendered init.yaml)", file=source, line=exc.line, state=state
        ) from None
    if doc.data is None:
        return []
    if not isinstance(doc.data, dict):
        raise StateError(
            "init.yaml must map resource ids to {type: {args}}", file=source, line=1, state=state
        )
    out = []
    for rid, body in doc.data.items():
        line = doc.line(rid)
        if not isinstance(body, dict) or len(body) != 1:
            raise StateError(
                "a resource is {<type>: {args}} with exactly one type",
                file=source,
                line=line,
                state=str(rid),
            )
        ((rtype_name, raw_args),) = body.items()
        rtype = REGISTRY.get(rtype_name)
        if rtype is None:
            raise StateError(
                f"unknown resource type {rtype_name!r} (known: {', '.join(sorted(REGISTRY))})",
                file=source,
                line=doc.line(rid, rtype_name),
                state=str(rid),
            )
        if not isinstance(raw_args, dict):
            raise StateError(
                f"{rtype_name}: arguments must be a mapping", file=source, line=line, state=str(rid)
            )
        args = check_args(rtype, raw_args, rid=str(rid), file=source, line=line)
        reqs: dict[str, tuple[str, ...]] = {}
        for key in REQUISITES:
            value = raw_args.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise StateError(
                    f"{key} must be a list of resource ids",
                    file=source,
                    line=doc.line(rid, rtype_name, key),
                    state=str(rid),
                )
            reqs[key] = tuple(value)
        if rtype_name == "file.managed" and args["source"] is not None:
            args["contents"] = render(env, f"{state}/{args['source']}", ctx, state=str(rid))
        out.append(
            Resource(
                str(rid), rtype_name, state, args, reqs["require"], reqs["watch"], source, line
            )
        )
    return out


def order(resources: list[Resource]) -> list[Resource]:
    """Requisites first, otherwise declaration order; a cycle is a StateError."""
    by_id = {r.id: r for r in resources}
    index = {r.id: i for i, r in enumerate(resources)}
    for r in resources:
        for dep in (*r.require, *r.watch):
            if dep not in by_id:
                raise StateError(
                    f"requisite {dep!r} is not a resource of this plan",
                    file=r.file,
                    line=r.line,
                    state=r.id,
                )
    indegree = {r.id: len(set(r.require) | set(r.watch)) for r in resources}
    users: dict[str, list[str]] = {r.id: [] for r in resources}
    for r in resources:
        for dep in set(r.require) | set(r.watch):
            users[dep].append(r.id)
    ready = [(index[rid], rid) for rid, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    out: list[Resource] = []
    while ready:
        _, rid = heapq.heappop(ready)
        out.append(by_id[rid])
        for user in users[rid]:
            indegree[user] -= 1
            if indegree[user] == 0:
                heapq.heappush(ready, (index[user], user))
    if len(out) != len(resources):
        cycle = _find_cycle(by_id, {rid for rid, n in indegree.items() if n > 0})
        first = by_id[cycle[0]]
        raise StateError(
            "requisite cycle: " + " -> ".join([*cycle, cycle[0]]),
            file=first.file,
            line=first.line,
            state=first.id,
        )
    return out


def _find_cycle(by_id: Mapping[str, Resource], stuck: set[str]) -> list[str]:
    start = min(stuck)
    path: list[str] = []
    seen: dict[str, int] = {}
    cur = start
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        r = by_id[cur]
        cur = min(d for d in (*r.require, *r.watch) if d in stuck)
    return path[seen[cur] :]


def compile_minion(
    tree: Tree,
    minion_id: str,
    env: ImmutableSandboxedEnvironment | None = None,
    site: dict[str, Any] | None = None,
    derived: set[str] | None = None,
) -> Plan:
    """The plan for one minion; every error names file, line and state/resource.

    The plan's secrets (what the minion masks in what it returns) are only those that appear
    in this minion's own resources, and values derived from them (``derived``): a minion is
    never sent a secret its files do not need, not even in the list of what to hide."""
    node = tree.nodes.get(minion_id)
    if node is None:
        raise ConfigError(
            f"minion {minion_id!r} is not in pillar.nodes (known: {', '.join(sorted(tree.nodes))})"
        )
    derived = derived if derived is not None else set()
    env = env or environment(tree.root, derived)
    ctx = context(tree, node, site)
    states = tree.states_for(node)
    resources: list[Resource] = []
    seen: dict[str, Resource] = {}
    for state in states:
        for r in _resources_of(env, tree, state, ctx):
            if r.id in seen:
                other = seen[r.id]
                raise StateError(
                    f"resource id also declared in {other.file}:{other.line}",
                    file=r.file,
                    line=r.line,
                    state=r.id,
                )
            seen[r.id] = r
            resources.append(r)
    ordered = tuple(order(resources))
    text = json.dumps([r.wire() for r in ordered], default=str)
    # as JSON escapes it: a secret of many lines (a PEM chain and key) has ``\n`` there
    mine = frozenset(
        x for x in tree.secrets | derived if x and (x in text or json.dumps(x)[1:-1] in text)
    )
    for r in ordered:
        _secret_mode(r, mine)
    return Plan(node.id, tuple(states), ordered, mine)


def _secret_mode(r: Resource, secrets: frozenset[str]) -> None:
    """A file that carries a secret gives others no access (0640 or stricter)."""
    if r.type != "file.managed" or not secrets:
        return
    contents = str(r.args.get("contents") or "")
    mode = str(r.args.get("mode") or "0644")
    if any(x in contents for x in secrets) and int(mode, 8) & 0o007:
        raise StateError(
            f"file holds a secret but mode {mode} lets others read it: use 0640 or stricter",
            file=r.file,
            line=r.line,
            state=r.id,
        )


def compile_tree(tree: Tree, minion_ids: list[str]) -> dict[str, Plan]:
    """Lint the site once, then compile a plan per minion (the first problem is raised)."""
    findings = lint(tree)
    if findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more finding(s))" if len(findings) > 1 else ""
        raise StateError(first.detail + more, file=first.file, line=first.line, state="lint")
    derived: set[str] = set()
    env = environment(tree.root, derived)
    site = site_context(tree)
    return {m: compile_minion(tree, m, env, site, derived) for m in minion_ids}
