"""Which delivered events a master must handle: only what a rule or the cluster view can use.

The reactor's durable consumer takes every subject of ``HACTL_EVENTS`` (no filter). It used
to ask JetStream for narrow filter subjects instead (one per rule family), but nats-server
(2.10-2.15) pays dearly for a consumer with several filter subjects on a stream with many
subjects: measured here, 200,000 messages over 800 subjects cost nats-server 1.95 s of CPU
through one filter and 17.8 s through three wildcard filters (nats-server issues 4888, 5040,
7014; its maintainers advise against many filter subjects). Unfiltered, the reactor throughput
benchmark went from ~8,600 to ~10,300 reactions/s with nats-server's CPU halved; the events
nobody listens to (the reactor's own audit trail, rule follow-ups, job returns) are acked
unread here, which costs the master a few microseconds each.

The view always needs ``hactl/beacon/**`` and ``hactl/minion/**``; beyond that an event is
wanted when some rule's ``on`` matches its tag. ``hactl/reactor/**`` never is: a rule cannot
react to the reactor's own decisions (no feedback loops).
"""

from __future__ import annotations

from collections.abc import Iterable

from hactl.master.reactor.rules.rule import Rule

VIEW_KINDS = frozenset({"beacon", "minion"})
NEVER_KINDS = frozenset({"reactor"})
_CACHE_LIMIT = 50_000


class Interest:
    """Which rules an event's tag wakes, and whether a delivery is wanted at all: one cache
    keyed by subject (the consumer asks by subject, the engine by tag: the same key)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._cache: dict[str, tuple[Rule, ...]] = {}

    def rules_for_subject(self, subject: str) -> tuple[Rule, ...]:
        """The rules whose ``on`` matches the tag of ``subject`` (cached)."""
        hit = self._cache.get(subject)
        if hit is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            hit = self._cache[subject] = self._match(subject)
        return hit

    def rules_for(self, tag: str) -> tuple[Rule, ...]:
        """The rules whose ``on`` matches ``tag``."""
        return self.rules_for_subject(tag.replace("/", "."))

    def wants(self, subject: str) -> bool:
        """True when the view or a rule can use an event that arrived on ``subject``."""
        kind = subject.split(".", 2)[1] if subject.count(".") >= 2 else ""
        return kind in VIEW_KINDS or bool(self.rules_for_subject(subject))

    def _match(self, subject: str) -> tuple[Rule, ...]:
        levels = subject.split(".")
        if len(levels) < 3 or levels[0] != "hactl" or levels[1] in NEVER_KINDS:
            return ()
        tag = "/".join(levels)
        return tuple(rule for rule in self.rules if rule.on.match(tag))
