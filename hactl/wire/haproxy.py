"""The ``haproxy.runtime`` command: one typed contract for the master and the minion (pure).

The master's actions build an :class:`HaproxyRuntime`, send :meth:`HaproxyRuntime.args`; the
minion rebuilds it with :meth:`HaproxyRuntime.from_args` (the same checks) and writes
:meth:`HaproxyRuntime.admin_line` to the admin socket. Names are checked against a strict
pattern, so no value can smuggle a second admin command (a newline, a semicolon).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hactl.schema import Field, SchemaError, check

COMMAND: Final = "haproxy.runtime"
STATES: Final = ("ready", "drain", "maint")
VERBS: Final = ("set_state", "set_weight", "shutdown_sessions")
WEIGHT: Final = (0, 256)  # HAProxy's weight range
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

FIELDS: Final = (
    Field("verb", (str,), choices=VERBS),
    Field("backend", (str,)),
    Field("server", (str,)),
    Field("state", (str,), required=False, choices=STATES),
    Field("weight", (int,), required=False, between=WEIGHT),
)


@dataclass(frozen=True, slots=True)
class HaproxyRuntime:
    """One runtime change of one server in one backend."""

    verb: str
    backend: str
    server: str
    state: str | None = None
    weight: int | None = None

    def args(self) -> dict[str, Any]:
        """The command's arguments on the wire."""
        out: dict[str, Any] = {"verb": self.verb, "backend": self.backend, "server": self.server}
        if self.state is not None:
            out["state"] = self.state
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> HaproxyRuntime:
        """Checked (the types and choices of :data:`FIELDS`, then :meth:`from_checked`'s
        rules), or :class:`SchemaError`. The only way the master makes one."""
        return cls.from_checked(check(COMMAND, FIELDS, args))

    @classmethod
    def from_checked(cls, given: Mapping[str, Any]) -> HaproxyRuntime:
        """From arguments :data:`FIELDS` has already checked (the minion's executor table
        does, once): only what the fields cannot say -- the names' characters and the value
        each verb needs."""
        for what in ("backend", "server"):
            if not _NAME.fullmatch(str(given[what])):
                raise SchemaError(COMMAND, what, f"is not a valid name: {given[what]!r}")
        if given["verb"] == "set_state" and given.get("state") is None:
            raise SchemaError(COMMAND, "state", "is required by set_state")
        if given["verb"] == "set_weight" and given.get("weight") is None:
            raise SchemaError(COMMAND, "weight", "is required by set_weight")
        return cls(**given)

    def admin_line(self) -> str:
        """The one line for HAProxy's admin socket."""
        where = f"{self.backend}/{self.server}"
        if self.verb == "set_state":
            return f"set server {where} state {self.state}"
        if self.verb == "set_weight":
            return f"set server {where} weight {self.weight}"
        return f"shutdown sessions server {where}"
