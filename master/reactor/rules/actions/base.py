"""The action contract: what an action is given (a frozen context) and what it returns.

Actions reach the world only through :class:`Effects` (publish, request, lease), so the engine
runs the same code on NATS and on the in-memory bus of the tests. Every action is idempotent:
a crashed master's events are redelivered to another, which may run the action again; events
it publishes carry a ``Nats-Msg-Id`` derived from the triggering event, so JetStream stores
them once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hactl.errors import HactlError
from hactl.master.reactor.view.cluster import ClusterView
from hactl.schema import Field, SchemaError, check
from hactl.wire.approvals import Approval
from hactl.wire.commands import CommandReply
from hactl.wire.envelope import Event
from hactl.wire.maint import Maintenance


class Effects(Protocol):
    """The reactor's only way out."""

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        """Publish (and store) one event; ``msg_id`` makes a retry a no-op."""
        ...

    async def request(
        self, target: str, cmd: str, args: dict[str, Any], timeout: float
    ) -> CommandReply:
        """A command to a minion; raises CommandError when nobody answers."""
        ...

    async def lease(self, name: str, value: bytes | None = None) -> bool:
        """Take the cluster-wide lease ``name`` once (False if someone holds or held it);
        ``value`` is the record a minion may check (hactl/wire/leases.py)."""
        ...

    async def release(self, name: str) -> None:
        """Give a lease back (a lock; an epoch's lease once its cluster has a Primary)."""
        ...

    async def lease_record(self, name: str) -> bytes | None:
        """The record a held lease was taken with (None: not held, or no record)."""
        ...


@dataclass(frozen=True, slots=True)
class Settings:
    """Reactor settings from ``hactl master``."""

    command_timeout: float = 10.0
    galera_timeout: float = 120.0
    allow_unreachable: bool = False
    states: Path | None = None
    pillar: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionContext:
    """Everything one action run may use."""

    effects: Effects
    view: ClusterView
    event: Event
    rule: str
    index: int
    observe: bool = False
    settings: Settings = field(default_factory=Settings)
    #: the active maintenance windows: an action that reaches past its trigger's node (every
    #: Galera member, every HAProxy) leaves what they cover alone
    maintenance: tuple[Maintenance, ...] = ()
    #: ask a person (question, plan) and wait for the answer; None when the rule has no
    #: ``approve`` (then a dangerous step is refused, never taken unasked)
    ask: Callable[[str, dict[str, Any]], Awaitable[Approval]] | None = None

    def msg_id(self, what: str) -> str:
        """A stable id for an event this run publishes (dedupe across redeliveries)."""
        return f"{self.rule}.{self.event.id}.{self.index}.{what}"


Run = Callable[[ActionContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Action:
    """A registered action: its typed arguments (the one schema mechanism) and its body."""

    name: str
    fields: tuple[Field, ...]
    run: Run
    doc: str = ""
    inline: bool = False  # only publishes (never waits on a minion): run on the event path

    def check(self, args: Mapping[str, Any]) -> str | None:
        """A problem with a rule's ``args`` found when the rule loads, or None. A template
        (``{{ ... }}``) passes here; its rendered value is checked when the rule fires."""
        try:
            check(self.name, self.fields, args, rendered=False)
        except SchemaError as exc:
            return f"{exc.field} {exc.reason}" if exc.field else exc.reason
        return None

    def checked(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The rendered arguments, checked with defaults; :class:`ActionFailed` otherwise."""
        try:
            return check(self.name, self.fields, args)
        except SchemaError as exc:
            raise ActionFailed(str(exc)) from None


def arg(name: str, types: tuple[type, ...], **kw: Any) -> Field:
    """An action argument: may be a template in the rule (checked once rendered)."""
    return Field(name, types, templated=True, **kw)


class ActionFailed(HactlError):
    """An action could not do what it was asked (the reason goes into the failed event)."""

    def __init__(self, reason: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result or {}
