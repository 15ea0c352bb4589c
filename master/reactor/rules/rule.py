"""Reactor rules: ``reactors/*.yaml`` validated into frozen dataclasses before anything runs.

A file holds a list of rules::

    - name: galera-node-out            # unique; [a-z0-9_-]
      on: hactl/beacon/*/galera        # tag glob
      when: event.changed.synced.to == false   # an expression (or {all: [...]}/{any: [...]})
      key: event.node                  # an expression: damping/lock key (default: the tag)
      debounce: 0                      # seconds of quiet before firing (latest event wins)
      cooldown: 5s                     # at least this long between firings per key
      max_per: {count: 3, window: 60s} # at most count firings per key per window
      lock: "galera"                   # cluster-wide: one action run at a time per lock name
      do:
        - haproxy.set_state: {node: all, backend: galera, server: "{{ event.node }}",
                              state: maint}

(An illustration of every key: the shipped reactors leave HAProxy's states to the reconciler,
master/reactor/convergence/. A unit test loads this example, so it cannot go stale.)

The vocabulary (``event.changed``, ``event.node``, ``cluster.*``) is in docs/reactor.md.

Errors name the file, the line and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hactl import yamlsrc
from hactl.errors import ConfigError, HactlError, TagError
from hactl.timeparse import parse_duration
from hactl.wire.tags import TagGlob

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_KEYS = {
    "name",
    "on",
    "when",
    "key",
    "debounce",
    "cooldown",
    "max_per",
    "lock",
    "approve",
    "do",
    "doc",
}


class RuleError(ConfigError):
    """A rule file is invalid: the file, the line, the rule and why."""

    def __init__(
        self, detail: str, *, file: str | None = None, line: int | None = None, rule: str = ""
    ) -> None:
        super().__init__(f"{rule}: {detail}" if rule else detail, file=file, line=line)
        self.rule = rule


class ExpressionError(HactlError):
    """A rule's expression or template failed when evaluated: names the rule and the source."""

    def __init__(self, rule: str, source: str, error: BaseException) -> None:
        super().__init__(f"rule {rule}: {source!r}: {type(error).__name__}: {error}")
        self.rule = rule
        self.source = source
        self.error = f"{type(error).__name__}: {error}"


def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox rules are evaluated in: no attribute access to Python internals."""
    return ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


@dataclass(frozen=True, slots=True)
class ActionCall:
    """One entry of ``do``: the action name and its (templated) arguments."""

    action: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ApprovePolicy:
    """``approve: {timeout: 10m, default: deny}``: how long a question waits for a person,
    and what applies when nobody answers (``deny`` or ``approve``)."""

    timeout: float = 600.0
    default: str = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule: ``when`` and ``key`` are expressions compiled at load; ``lock`` and
    action arguments are templates (``{{ ... }}``), their rendered values checked when the
    rule fires."""

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
    #: its actions may ask a person before a dangerous step (hactl/wire/approvals.py)
    approve: ApprovePolicy | None = None
    file: str = ""
    line: int | None = None
    #: ``when`` and ``key`` compiled when the rule loads (evaluated on the engine's context)
    when_fn: Expr | None = field(default=None, compare=False, repr=False)
    key_fn: Expr | None = field(default=None, compare=False, repr=False)

    @property
    def trigger_fields(self) -> frozenset[str]:
        """The beacon fields whose change this rule's condition tests (``event.changed.X``):
        the fact behind its action, which must still hold when the action runs."""
        return frozenset(_CHANGED.findall(self.when))


_CHANGED = re.compile(r"event\.changed\.([A-Za-z_][A-Za-z0-9_]*)")


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
        return RuleError(detail, file=doc.source, line=doc.line(*path, *sub), rule=label)

    if not isinstance(raw, dict):
        raise bad("a rule is a mapping")
    if unknown := sorted(set(raw) - _KEYS):
        raise bad(
            f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})", unknown[0]
        )
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad("name: required, [a-z0-9_-], at most 64 characters", "name")
    try:
        glob = TagGlob.parse(str(raw.get("on", "")))
    except TagError as exc:
        raise bad(f"on: {exc.reason}", "on") from None
    when = _condition(raw.get("when", "true"), lambda d: bad(f"when: {d}", "when"))
    when_fn = _compile(env, when, lambda d: bad(f"when: {d}", "when"))
    for field_name in ("key", "lock"):
        if field_name in raw and not isinstance(raw[field_name], str):
            raise bad(f"{field_name}: a string", field_name)
    key = str(raw.get("key", ""))
    key_fn = _compile(env, key, lambda d: bad(f"key: {d}", "key")) if key else None
    count, window = 0, 0.0
    if (max_per := raw.get("max_per")) is not None:
        if not isinstance(max_per, dict) or set(max_per) != {"count", "window"}:
            raise bad("max_per: {count: N, window: DURATION}", "max_per")
        if not isinstance(max_per["count"], int) or max_per["count"] < 1:
            raise bad("max_per.count: a positive integer", "max_per")
        count, window = max_per["count"], _duration(max_per["window"], "max_per.window", bad)
    return Rule(
        name=name,
        on=glob,
        when=when,
        do=_calls(env, raw.get("do"), actions, bad),
        key=key,
        when_fn=when_fn,
        key_fn=key_fn,
        debounce=_duration(raw.get("debounce"), "debounce", bad),
        cooldown=_duration(raw.get("cooldown"), "cooldown", bad),
        max_count=count,
        max_window=window,
        lock=str(raw.get("lock", "")),
        approve=_approve(raw.get("approve"), bad),
        file=doc.source,
        line=doc.line(*path),
    )


def _approve(raw: Any, bad: Callable[..., RuleError]) -> ApprovePolicy | None:
    """``approve: {timeout: DURATION, default: deny|approve}`` (both optional)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"timeout", "default"}:
        raise bad("approve: {timeout: DURATION, default: deny|approve}", "approve")
    timeout = _duration(raw.get("timeout", 600), "approve.timeout", bad)
    default = raw.get("default", "deny")
    if default not in ("deny", "approve") or not 1 <= timeout <= 86_400:
        raise bad("approve: default is deny or approve; timeout from 1 s to 24 h", "approve")
    return ApprovePolicy(timeout, str(default))


def _condition(raw: Any, bad: Callable[[str], RuleError]) -> str:
    """``when``: one expression, or ``{all: [...]}`` / ``{any: [...]}`` of conditions (nested
    as deep as needed), joined into one expression."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any"):
        ((kind, parts),) = raw.items()
        if not isinstance(parts, list) or not parts:
            raise bad(f"{kind}: a non-empty list of conditions")
        joiner = " and " if kind == "all" else " or "
        return joiner.join(f"({_condition(p, bad)})" for p in parts)
    raise bad("an expression, or {all: [...]} / {any: [...]} of expressions")


def _compile(
    env: ImmutableSandboxedEnvironment, source: str, bad: Callable[[str], RuleError]
) -> Expr:
    if "{{" in source or "{%" in source:
        raise bad(f"an expression, not a template: write {source.strip(' {}')!r}")
    try:
        return Expr(env, source)
    except jinja2.TemplateSyntaxError as exc:
        raise bad(exc.message or "syntax error") from None


class Expr:
    """A sandboxed Jinja expression compiled once, evaluated on a shared context.

    Jinja's ``compile_expression`` result merges the environment's globals into a new dict on
    every call (a ChainMap walk: 9 % of the reactor's time at 6,000 events/s); here the
    globals are merged once per event by the caller and the context is shared.
    """

    def __init__(self, env: Any, source: str) -> None:
        self.source = source
        self.tmpl = env.compile_expression(source, undefined_to_none=False)._template

    def __call__(self, ctx: dict[str, Any]) -> Any:
        context = self.tmpl.new_context(ctx, shared=True)
        for _ in self.tmpl.root_render_func(context):
            pass
        return context.vars["result"]


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
                raise RuleError(
                    f"name also used at {other.file}:{other.line}",
                    file=rule.file,
                    line=rule.line,
                    rule=rule.name,
                )
            seen[rule.name] = rule
            rules.append(rule)
    return rules
