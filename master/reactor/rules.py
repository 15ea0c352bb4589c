"""Reactor rules: ``reactors/*.yaml`` validated into frozen dataclasses before anything runs.

A file holds a list of rules::

    - name: galera-node-out            # unique; [a-z0-9_-]
      on: hactl/beacon/*/galera        # tag glob
      when: "event.data.items.local.synced == false"   # sandboxed Jinja expression
      key: "{{ event.minion }}"        # damping/lock key (default: the event tag)
      debounce: 0                      # seconds of quiet before firing (latest event wins)
      cooldown: 5s                     # at least this long between firings per key
      max_per: {count: 3, window: 60s} # at most count firings per key per window
      lock: "galera"                   # cluster-wide: one action run at a time per lock name
      do:
        - haproxy.set_state: {node: all, backend: galera, server: "{{ event.minion }}",
                              state: maint}

Errors name the file, the line and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hactl import yamlsrc
from hactl.errors import ConfigError, StateError, TagError
from hactl.timeparse import parse_duration
from hactl.wire.tags import TagGlob

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_KEYS = {"name", "on", "when", "key", "debounce", "cooldown", "max_per", "lock", "do", "doc"}


class RuleError(StateError):
    """A rule file is invalid (file, line, rule)."""


def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox rules are evaluated in: no attribute access to Python internals."""
    return ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


@dataclass(frozen=True, slots=True)
class ActionCall:
    """One entry of ``do``: the action name and its (templated) arguments."""

    action: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule; ``when``/``key``/``lock`` and action args are compiled lazily."""

    name: str
    on: TagGlob
    when: str
    do: tuple[ActionCall, ...]
    key: str = ""
    debounce: float = 0.0
    cooldown: float = 0.0
    max_count: int = 0
    max_window: float = 0.0
    lock: str = ""
    file: str = ""
    line: int | None = None


def _duration(value: Any, what: str, bad: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise bad(f"{what}: {exc.detail}") from None
    raise bad(f"{what}: a duration like 5s, 2m or a number of seconds")


def parse_rules(doc: yamlsrc.Doc, actions: Mapping[str, Any]) -> list[Rule]:
    """Validate one parsed file against the action registry ``actions``."""
    env = environment()
    data = doc.data if doc.data is not None else []
    base: tuple[Any, ...] = ()
    if isinstance(data, dict) and set(data) == {"rules"}:
        data, base = data["rules"], ("rules",)
    if not isinstance(data, list):
        raise RuleError("a rule file is a list of rules", file=doc.source, line=1)
    return [_rule(env, doc, raw, (*base, i), actions) for i, raw in enumerate(data)]


def _rule(
    env: ImmutableSandboxedEnvironment,
    doc: yamlsrc.Doc,
    raw: Any,
    path: tuple[Any, ...],
    actions: Mapping[str, Any],
) -> Rule:
    name = raw.get("name") if isinstance(raw, dict) else None
    label = str(name) if name else f"rule #{int(path[-1]) + 1}"

    def bad(detail: str, *sub: Any) -> RuleError:
        return RuleError(detail, file=doc.source, line=doc.line(*path, *sub), state=label)

    if not isinstance(raw, dict):
        raise bad("a rule is a mapping")
    if unknown := sorted(set(raw) - _KEYS):
        raise bad(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})",
                  unknown[0])  # fmt: skip
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad("name: required, [a-z0-9_-], at most 64 characters", "name")
    try:
        glob = TagGlob.parse(str(raw.get("on", "")))
    except TagError as exc:
        raise bad(f"on: {exc.reason}", "on") from None
    when = str(raw.get("when", "true"))
    try:
        env.compile_expression(when)
    except jinja2.TemplateSyntaxError as exc:
        raise bad(f"when: {exc.message}", "when") from None
    for field_name in ("key", "lock"):
        if field_name in raw and not isinstance(raw[field_name], str):
            raise bad(f"{field_name}: a string (may be templated)", field_name)
    count, window = 0, 0.0
    if (max_per := raw.get("max_per")) is not None:
        if not isinstance(max_per, dict) or set(max_per) != {"count", "window"}:
            raise bad("max_per: {count: N, window: DURATION}", "max_per")
        if not isinstance(max_per["count"], int) or max_per["count"] < 1:
            raise bad("max_per.count: a positive integer", "max_per")
        count, window = max_per["count"], _duration(max_per["window"], "max_per.window", bad)
    return Rule(
        name=name, on=glob, when=when, do=_calls(env, raw.get("do"), actions, bad),
        key=str(raw.get("key", "")), debounce=_duration(raw.get("debounce"), "debounce", bad),
        cooldown=_duration(raw.get("cooldown"), "cooldown", bad), max_count=count,
        max_window=window, lock=str(raw.get("lock", "")), file=doc.source, line=doc.line(*path),
    )  # fmt: skip


def _calls(
    env: ImmutableSandboxedEnvironment, do: Any, actions: Mapping[str, Any], bad: Any
) -> tuple[ActionCall, ...]:
    if not isinstance(do, list) or not do:
        raise bad("do: a non-empty list of actions", "do")
    calls = []
    for j, entry in enumerate(do):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise bad("each do entry is {action: {args}}", "do", j)
        ((action, args),) = entry.items()
        if action not in actions:
            raise bad(f"unknown action {action!r} (known: {', '.join(sorted(actions))})", "do", j)
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise bad(f"{action}: arguments must be a mapping", "do", j)
        if problem := actions[action].check(args):
            raise bad(f"{action}: {problem}", "do", j)
        _check_templates(env, args, bad, j)
        calls.append(ActionCall(action, args))
    return tuple(calls)


def _check_templates(env: ImmutableSandboxedEnvironment, value: Any, bad: Any, j: int) -> None:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        try:
            env.from_string(value)
        except jinja2.TemplateSyntaxError as exc:
            raise bad(f"template {value!r}: {exc.message}", "do", j) from None
    elif isinstance(value, dict):
        for v in value.values():
            _check_templates(env, v, bad, j)
    elif isinstance(value, list):
        for v in value:
            _check_templates(env, v, bad, j)


MAX_RULE_FILE = 1024 * 1024


def load_rules(folder: Path, actions: Mapping[str, Any]) -> list[Rule]:
    """Every ``*.yaml`` of ``folder`` in name order; names must be unique across files."""
    if not folder.is_dir():
        raise ConfigError("not a folder of rule files", file=str(folder))
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            if path.stat().st_size > MAX_RULE_FILE:
                raise ConfigError(f"larger than {MAX_RULE_FILE // 1024} KiB", file=str(path))
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", file=str(path)) from None
        for rule in parse_rules(yamlsrc.load(text, str(path)), actions):
            if rule.name in seen:
                other = seen[rule.name]
                raise RuleError(f"name also used at {other.file}:{other.line}", file=rule.file,
                                line=rule.line, state=rule.name)  # fmt: skip
            seen[rule.name] = rule
            rules.append(rule)
    return rules
