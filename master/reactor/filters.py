"""Which subjects the reactor's consumer asks for: only what a rule or the view can use.

The view always needs ``hactl.beacon.>`` and ``hactl.minion.>``; beyond that, every rule's
``on`` glob contributes its subjects. Events nobody listens to (a rule's own follow-ups, most
``hactl/event/**`` traffic) are then never delivered to a master at all. JetStream refuses
overlapping filter subjects in one consumer, so covered subjects are dropped and a kind whose
patterns partly overlap (or that has too many) collapses to ``hactl.<kind>.>``.
"""

from __future__ import annotations

from collections.abc import Iterable

from master.reactor.rules import Rule

ALWAYS = ("hactl.beacon.>", "hactl.minion.>")
MAX_PER_KIND = 256


def _tokens(subject: str) -> list[str]:
    return subject.split(".")


def covers(wide: str, narrow: str) -> bool:
    """Every subject matching ``narrow`` also matches ``wide``."""
    a, b = _tokens(wide), _tokens(narrow)
    for i, tok in enumerate(a):
        if tok == ">":
            return len(b) > i
        if i >= len(b) or b[i] == ">":
            return False
        if tok != "*" and (b[i] == "*" or tok != b[i]):
            return False
    return len(a) == len(b)


def overlap(x: str, y: str) -> bool:
    """Some subject matches both patterns."""
    a, b = _tokens(x), _tokens(y)
    for i in range(max(len(a), len(b))):
        if i < len(a) and a[i] == ">":
            return len(b) > i
        if i < len(b) and b[i] == ">":
            return len(a) > i
        if i >= len(a) or i >= len(b):
            return False
        if a[i] != "*" and b[i] != "*" and a[i] != b[i]:
            return False
    return True


def consumer_filters(rules: Iterable[Rule]) -> list[str]:
    """The consumer's filter subjects for this rule set (sorted, non-overlapping)."""
    wanted = set(ALWAYS)
    for rule in rules:
        wanted.update(s for s in rule.on.subjects() if not s.startswith("hactl.reactor."))
    kept = sorted(s for s in wanted if not any(o != s and covers(o, s) for o in wanted))
    by_kind: dict[str, list[str]] = {}
    for s in kept:
        by_kind.setdefault(_tokens(s)[1], []).append(s)
    out: list[str] = []
    for kind, subs in sorted(by_kind.items()):
        clash = any(overlap(a, b) for i, a in enumerate(subs) for b in subs[i + 1 :])
        out += [f"hactl.{kind}.>"] if clash or len(subs) > MAX_PER_KIND else subs
    return out
