"""Rule expressions and templated action arguments, compiled once and cached (pure).

A rule's ``when`` is an expression over ``event`` and ``cluster``; an action argument or a
``lock`` may be a template. A lone ``{{ expr }}`` keeps its value's type (a number stays a
number, a list a list); any other text renders to a string; text without template syntax is
returned as it is. Caches are per distinct source text, which comes from the (bounded, checked)
rule files, never from events.
"""

from __future__ import annotations

from typing import Any

import jinja2

from hactl.master.reactor.rules.rule import Expr, Rule


class Templates:
    """The compiled expressions and templates of one engine's rule set."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.env = env
        self._exprs: dict[str, Any] = {}
        self._templates: dict[str, Any] = {}

    def expr(self, source: str) -> Any:
        """A compiled expression; called with the full context (globals included)."""
        fn = self._exprs.get(source)
        if fn is None:
            fn = self._exprs[source] = Expr(self.env, source)
        return fn

    def true(self, rule: Rule, ctx: dict[str, Any]) -> bool:
        """The rule's ``when`` holds in ``ctx`` (an undefined value is false)."""
        fn = rule.when_fn if rule.when_fn is not None else self.expr(rule.when)
        value = fn(ctx)
        return bool(value) and not isinstance(value, jinja2.Undefined)

    def render(self, text: str, ctx: dict[str, Any]) -> Any:
        """A templated value; a lone ``{{ expr }}`` keeps its type (numbers, lists)."""
        stripped = text.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            value = self.expr(stripped[2:-2])(ctx)
            return None if isinstance(value, jinja2.Undefined) else value
        if "{{" not in text and "{%" not in text:
            return text
        tpl = self._templates.get(text)
        if tpl is None:
            tpl = self._templates[text] = self.env.from_string(text)
        return self.env.concat(tpl.root_render_func(tpl.new_context(ctx, shared=True)))

    def args(self, value: Any, ctx: dict[str, Any]) -> Any:
        """Action arguments with every string rendered, through dicts and lists."""
        if isinstance(value, str):
            return self.render(value, ctx)
        if isinstance(value, dict):
            return {k: self.args(v, ctx) for k, v in value.items()}
        if isinstance(value, list):
            return [self.args(v, ctx) for v in value]
        return value
