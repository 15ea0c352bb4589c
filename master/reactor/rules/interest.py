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
    """``wants(subject)``: decode and handle this delivery, or ack it unread (cached)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._cache: dict[str, bool] = {}

    def wants(self, subject: str) -> bool:
        """True when the view or a rule can use an event that arrived on ``subject``."""
        hit = self._cache.get(subject)
        if hit is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            hit = self._cache[subject] = self._decide(subject)
        return hit

    def _decide(self, subject: str) -> bool:
        levels = subject.split(".")
        if len(levels) < 3 or levels[0] != "hactl" or levels[1] in NEVER_KINDS:
            return False
        if levels[1] in VIEW_KINDS:
            return True
        tag = "/".join(levels)
        return any(rule.on.match(tag) for rule in self.rules)
