"""What a rule sees as ``event``: the vocabulary of docs/reactor.md (``event.node``,
``event.changed.<field>.{item, from, to}``, ``event.changes``, ``event.items``). The
``cluster`` facts are computed by the view (master/reactor/view/cluster.py: facts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hactl.wire.envelope import Event
from hactl.wire.tags import parse_tag


@dataclass(frozen=True, slots=True)
class EventView:
    """What a rule sees as ``event`` (docs/reactor.md, "The vocabulary"). An object, not a
    dict: ``event.items`` is the beacon's items, never a dict method."""

    id: str
    tag: str
    minion: str
    ts: float
    data: Any
    levels: list[str]
    node: str
    items: Any
    changes: list[dict[str, Any]]
    changed: dict[str, Any]


def event_view(event: Event) -> EventView:
    """The ``event`` a rule sees, built once per event."""
    tag = parse_tag(event.tag)
    changes = _changes(event.data.get("changes"))
    changed: dict[str, Any] = {}
    for c in changes:
        changed.setdefault(c["field"], c)  # the first change of each field
    items = event.data.get("items")
    node = tag.node or event.minion
    return EventView(
        event.id,
        event.tag,
        event.minion,
        event.ts,
        event.data,
        list(tag.levels),
        node,
        items if isinstance(items, dict) else {},
        changes,
        changed,
    )


def _changes(raw: Any) -> list[dict[str, Any]]:
    """A beacon's changes as ``{item, field, from, to}`` (malformed entries skipped)."""
    if not isinstance(raw, list):
        return []
    ok = [c for c in raw[:1000] if isinstance(c, dict) and isinstance(c.get("field"), str)]
    return [
        {"item": c.get("item"), "field": c["field"], "from": c.get("prev"), "to": c.get("value")}
        for c in ok
    ]


class LazyFacts(Mapping[str, Any]):
    """A rule's ``cluster``, computed the first time a rule reads it. The facts walk every
    node of the view; most conditions test only ``event`` (a supervisor flap, a changed
    field), and a 1,000-node view made every such event pay for the walk
    (benchmarks/storm.py). Reads like the dict it stands for: ``cluster.galera.primary``
    and ``cluster['vips']`` alike; an error computing them is raised where a rule reads them
    (that rule's condition fails, not the others')."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute: Callable[[], Mapping[str, Any]]) -> None:
        self._compute = compute
        self._value: Mapping[str, Any] | None = None

    def _facts(self) -> Mapping[str, Any]:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._facts()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts())

    def __len__(self) -> int:
        return len(self._facts())
