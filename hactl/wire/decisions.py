"""The decision trail's one builder: ``hactl/reactor/<rule>/<outcome>`` events.

Every decision a master makes -- a rule's (master/reactor/rules/engine.py), the reconciler's, the
singleton leases' -- is one of these, so ``hactl history`` and ``hactl why`` read a single
layout: the rule, the event that caused it (``event_id``, ``event_tag``, ``event_ts`` when
known), then the decider's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hactl.wire.envelope import Event, new_event
from hactl.wire.tags import MASTER_ID, reactor_tag


@dataclass(frozen=True, slots=True)
class Cause:
    """What a decision answers: an event (id, tag, when) or, with no event, a label such as
    ``hactl/reconcile`` (the fact came from the stored view, or a timer)."""

    id: str
    tag: str
    ts: float | None = None

    @classmethod
    def of(cls, event: Event) -> Cause:
        """The cause of a decision about ``event``."""
        return cls(event.id, event.tag, event.ts)


def decision(rule: str, outcome: str, cause: Cause, fields: Mapping[str, Any]) -> Event:
    """One decision of ``rule`` (fired, done, failed, suppressed, pending)."""
    body: dict[str, Any] = {"rule": rule, "event_id": cause.id, "event_tag": cause.tag}
    if cause.ts is not None:
        body["event_ts"] = cause.ts
    body.update(fields)
    return new_event(reactor_tag(rule, outcome), MASTER_ID, body)
