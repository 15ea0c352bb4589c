"""YAML with source lines: every mapping key and list item remembers where it was written.

Mapping keys that YAML 1.1 would read as booleans (``on``, ``off``, ``yes``, ``no``) stay
strings: keys are names here (a reactor rule's ``on:``).

Validators turn these into frozen dataclasses and, on error, name ``file:line``. Only safe YAML
types are built (the same as ``yaml.safe_load``); duplicate keys are an error, not a silent
overwrite; aliases are refused (a 309-byte file of nested aliases took 0.3 s per level and a
self-reference recursed until Python gave up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from hactl.errors import ConfigError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Doc:
    """A parsed YAML document and the line of each key/item path (1-based)."""

    source: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    replace: frozenset[Path_] = frozenset()  # mappings tagged !replace (see master/states/tree)

    def line(self, *path: str | int) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        p: Path_ = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def error(self, detail: str, *path: str | int) -> ConfigError:
        """A ConfigError at ``path``."""
        return ConfigError(detail, file=self.source, line=self.line(*path))


REPLACE_TAG = "!replace"


def _build(
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    source: str,
    replace: set[Path_],
    seen: set[int],
) -> Any:
    if id(node) in seen:  # the composer hands an alias back as the anchored node itself
        where = next(
            (lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in lines),
            node.start_mark.line + 1,
        )
        raise ConfigError(
            "YAML aliases (*name) are not allowed: write the value out (an "
            "alias can expand without limit or refer to itself)",
            file=source,
            line=where,
        )
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if node.tag == REPLACE_TAG:
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(
                "!replace applies to a mapping", file=source, line=node.start_mark.line + 1
            )
        replace.add(path)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:bool":
                key = key_node.value  # a key is a name: `on:` stays "on" (YAML 1.1 says True)
            else:
                key = _LOADER.construct_object(key_node)
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r}", file=source, line=key_node.start_mark.line + 1
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines, source, replace, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, i), lines, source, replace, seen)
            for i, item in enumerate(node.value)
        ]
    return _LOADER.construct_object(node)


_LOADER = yaml.SafeLoader("")
# libyaml's parser when PyYAML was built with it (Debian's and PyPI's wheels are): ~10x faster.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str, source: str) -> Doc:
    """Parse one YAML document; syntax errors name the file and line."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"YAML syntax: {problem}", file=source, line=mark.line + 1 if mark else None
        ) from None
    lines: dict[Path_, int] = {}
    replace: set[Path_] = set()
    if node is None:
        return Doc(source, None, lines)
    try:
        data = _build(node, (), lines, source, replace, set())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML: {getattr(exc, 'problem', exc)}", file=source, line=line) from None
    return Doc(source, data, lines, frozenset(replace))
