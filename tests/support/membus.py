"""An in-memory bus for reactor tests: records what the engine publishes, answers commands.

Minions are plain functions here (target -> handler), so the tests see exactly which
commands a rule sends, in which order, with which arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hactl.errors import CommandError
from hactl.wire.commands import CommandReply
from hactl.wire.envelope import Event

Handler = Callable[[str, dict[str, Any]], dict[str, Any] | CommandReply]


@dataclass
class MemBus:
    """Implements master.reactor.actions.Effects."""

    minions: dict[str, Handler] = field(default_factory=dict)
    published: list[tuple[Event, str | None]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    leases: set[str] = field(default_factory=set)
    lease_values: dict[str, bytes | None] = field(default_factory=dict)
    stored_ids: set[str] = field(default_factory=set)

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        """Record; a repeated msg_id is dropped like JetStream's duplicate window does."""
        if msg_id is not None:
            if msg_id in self.stored_ids:
                return
            self.stored_ids.add(msg_id)
        self.published.append((event, msg_id))

    async def request(
        self, target: str, cmd: str, args: dict[str, Any], timeout: float
    ) -> CommandReply:
        """Call the minion's handler; no handler -> CommandError like a missing responder."""
        self.requests.append((target, cmd, args))
        handler = self.minions.get(target)
        if handler is None:
            raise CommandError(target, cmd, "nobody serves it", kind="unanswered")
        out = handler(cmd, args)
        if isinstance(out, CommandReply):
            return out
        return CommandReply(jid="j", ok=True, result=out)

    async def lease(self, name: str, value: bytes | None = None) -> bool:
        """Create-once; the record is kept for the tests to read."""
        if name in self.leases:
            return False
        self.leases.add(name)
        self.lease_values[name] = value
        return True

    async def release(self, name: str) -> None:
        """Delete."""
        self.leases.discard(name)

    async def lease_record(self, name: str) -> bytes | None:
        """The record of a held lease."""
        return self.lease_values.get(name) if name in self.leases else None

    def audit(self, what: str | None = None) -> list[Event]:
        """Published reactor events (of one kind: fired/suppressed/done/failed)."""
        return [
            e
            for e, _ in self.published
            if e.tag.startswith("hactl/reactor/") and (what is None or e.tag.endswith("/" + what))
        ]


def ok_runtime(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    """A minion whose HAProxy accepts every runtime command."""
    return {"result": True, "comment": "done"}
