"""Load a state tree: ``top.yaml``, ``pillar/*.yaml`` (merged, secrets resolved), state dirs.

Layout::

    STATES/top.yaml               # target -> [state, ...]; target = id glob or role:NAME
    STATES/pillar/*.yaml          # site data, merged in name order (later files win)
    STATES/<state>/init.yaml      # resources (YAML rendered through Jinja first)
    STATES/<state>/*.j2           # templates used by file.managed ``source``

Pillar files deep-merge: a later file changes single values and adds keys. A mapping tagged
``!replace`` (``nodes: !replace {...}``) replaces the merged one as a whole instead -- how a
site or lab pillar swaps the whole inventory. Lists always replace.

A secret is written ``{secret: {env: NAME}}`` and/or ``{secret: {file: /path}}`` (env first,
then file). Its value is used in rendered files but never shown: every diff, comment and
event that leaves the minion has secret values replaced by ``***``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hactl import yamlsrc
from hactl.errors import ConfigError, StateError

REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the site, from ``pillar.nodes``: its id, address and roles."""

    id: str
    address: str
    roles: tuple[str, ...]
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Tree:
    """A loaded, validated tree (nothing rendered yet)."""

    root: Path
    top: tuple[tuple[str, tuple[str, ...], int], ...]  # (target, states, line)
    pillar: Mapping[str, Any]
    nodes: Mapping[str, Node]
    secrets: frozenset[str] = field(default_factory=frozenset)
    pillar_docs: tuple[yamlsrc.Doc, ...] = ()
    #: states that must roll (``<state>/roll.yaml``: ``batch: N``): a plain apply changes
    #: them N nodes at a time behind the health gate (master/rolling.py)
    rolling: Mapping[str, int] = field(default_factory=dict)
    #: their own gates (roll.yaml ``gate``: an expression over ``cluster``), by state
    roll_gates: Mapping[str, str] = field(default_factory=dict)

    def where(self, *path: str | int) -> tuple[str, int | None]:
        """The pillar file and line that set ``path`` (the last file that has it wins)."""
        for doc in reversed(self.pillar_docs):
            if tuple(path) in doc.lines:
                return doc.source, doc.lines[tuple(path)]
        for doc in reversed(self.pillar_docs):
            line = doc.line(*path)
            if line is not None and doc.data is not None:
                return doc.source, line
        return "pillar", None

    def states_for(self, node: Node) -> list[str]:
        """State names that top.yaml assigns to ``node``, in top.yaml order, once each."""
        out: list[str] = []
        for target, states, _ in self.top:
            if _matches(target, node):
                out += [s for s in states if s not in out]
        return out

    def targets(self, glob: str) -> list[Node]:
        """Nodes whose id matches ``glob`` (``role:NAME`` selects by role)."""
        return [n for n in self.nodes.values() if _matches(glob, n)]


def _matches(target: str, node: Node) -> bool:
    if target.startswith("role:"):
        return target[5:] in node.roles
    return fnmatch.fnmatchcase(node.id, target)


def _merge(
    base: dict[str, Any],
    extra: Mapping[str, Any],
    replace: frozenset[tuple[Any, ...]] = frozenset(),
    path: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``base``; a mapping tagged ``!replace`` replaces instead."""
    out = dict(base)
    for key, value in extra.items():
        here = (*path, key)
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and here not in replace:
            out[key] = _merge(out[key], value, replace, here)
        else:
            out[key] = value
    return out


def _resolve_secrets(
    value: Any, docs: list[yamlsrc.Doc], path: tuple[Any, ...], found: set[str]
) -> Any:
    """Secrets are resolved after merging: a later file may replace one (the lab does)."""
    if isinstance(value, dict):
        if set(value) == {"secret"}:
            doc = next((d for d in reversed(docs) if path in d.lines), docs[-1])
            return _secret(value["secret"], doc, path, found)
        return {k: _resolve_secrets(v, docs, (*path, k), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_secrets(v, docs, (*path, i), found) for i, v in enumerate(value)]
    return value


def _secret(spec: Any, doc: yamlsrc.Doc, path: tuple[Any, ...], found: set[str]) -> str:
    where = ".".join(str(p) for p in path)
    if not isinstance(spec, dict) or not spec or set(spec) - {"env", "file"}:
        raise doc.error(
            f"{where}: a secret is {{secret: {{env: NAME}}}} and/or {{file: PATH}}", *path
        )
    value = os.environ.get(str(spec["env"])) if "env" in spec else None
    if value is None and "file" in spec:
        try:
            value = Path(str(spec["file"])).read_text(encoding="utf-8").strip()
        except OSError:
            value = None
    if not value:
        tried = " or ".join(f"{k} {spec[k]}" for k in ("env", "file") if k in spec)
        raise doc.error(f"{where}: secret not available (tried {tried})", *path)
    if _only_certificates(value):  # a CA or chain is public: read like a secret, not one
        return value
    found.add(value)
    for line in value.splitlines():  # `INDEX KEY` lines (a fernet repository): each key too
        index, _, key = line.strip().partition(" ")
        if index.isdigit() and len(key.strip()) >= 16:
            found.add(key.strip())
    return value


def _only_certificates(value: str) -> bool:
    """PEM certificates and nothing else (no key): what a CA file holds, world-readable by
    design (clients verify with it), so neither masked nor held to a secret's file mode."""
    text = value.strip()
    begins = [ln for ln in text.splitlines() if ln.startswith("-----BEGIN ")]
    return bool(begins) and all(ln == "-----BEGIN CERTIFICATE-----" for ln in begins)


def _load_doc(path: Path) -> yamlsrc.Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    return yamlsrc.load(text, str(path))


def _nodes(pillar: Mapping[str, Any], docs: list[yamlsrc.Doc]) -> dict[str, Node]:
    raw = pillar.get("nodes")
    where = docs[0] if docs else yamlsrc.Doc("pillar", None)
    if not isinstance(raw, dict) or not raw:
        raise where.error("pillar: 'nodes' must map node ids to {address, roles}")
    nodes = {}
    for ident, spec in raw.items():
        doc = next((d for d in docs if d.line("nodes", ident)), where)
        if not isinstance(spec, dict) or not isinstance(spec.get("address"), str):
            raise doc.error(f"nodes.{ident}: needs an 'address'", "nodes", ident)
        roles = spec.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise doc.error(f"nodes.{ident}: roles must be a list of names", "nodes", ident)
        nodes[str(ident)] = Node(str(ident), spec["address"], tuple(roles), spec)
    return nodes


def load_tree(root: Path, extra_pillar: list[Path] | None = None) -> Tree:
    """Read and check top.yaml and the pillar (plus ``extra_pillar`` files, applied last)."""
    if not (root / "top.yaml").is_file():
        raise ConfigError("not a state tree: no top.yaml", file=str(root))
    top_doc = _load_doc(root / "top.yaml")
    if not isinstance(top_doc.data, dict):
        raise top_doc.error("top.yaml must map targets (id glob or role:NAME) to state lists")
    top = []
    for target, states in top_doc.data.items():
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise top_doc.error(f"{target}: must be a list of state names", target)
        for i, name in enumerate(states):
            if not (root / name / "init.yaml").is_file():
                raise top_doc.error(f"{target}: no state {name!r} ({name}/init.yaml)", target, i)
        top.append((str(target), tuple(states), top_doc.line(target) or 0))
    files = sorted((root / "pillar").glob("*.yaml")) + list(extra_pillar or [])
    docs = [_load_doc(p) for p in files]
    pillar: dict[str, Any] = {}
    secrets: set[str] = set()
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise doc.error("a pillar file must be a mapping")
        pillar = _merge(pillar, doc.data, doc.replace)
    if docs:
        pillar = _resolve_secrets(pillar, docs, (), secrets)
    rolling, gates = _rolling(root, {s for _, states, _ in top for s in states})
    return Tree(
        root,
        tuple(top),
        pillar,
        _nodes(pillar, docs),
        frozenset(secrets),
        tuple(docs),
        rolling,
        gates,
    )


def _rolling(root: Path, states: set[str]) -> tuple[dict[str, int], dict[str, str]]:
    """``<state>/roll.yaml`` of each used state: ``{batch: N, gate: EXPR}`` (N >= 1; the gate
    is optional: the default one -- everything healthy -- otherwise)."""
    out, gates = {}, {}
    for name in sorted(states):
        f = root / name / "roll.yaml"
        if not f.is_file():
            continue
        doc = _load_doc(f)
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict) or set(data) - {"batch", "gate"}:
            raise doc.error("roll.yaml: {batch: N, gate: EXPR} (how many nodes at a time)")
        if "gate" in data:
            if not isinstance(data["gate"], str) or not data["gate"].strip():
                raise doc.error("roll.yaml: gate is an expression over cluster", "gate")
            gates[name] = data["gate"].strip()
        batch = data.get("batch", 1)
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise doc.error("roll.yaml: batch is a positive integer", "batch")
        out[name] = batch
    return out, gates


def redact(text: str, secrets: frozenset[str] | set[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, REDACTED)
    return text


def state_error(detail: str, state: str, file: Path | str, line: int | None = None) -> StateError:
    """Shorthand used by the compiler."""
    return StateError(detail, file=str(file), line=line, state=state)
