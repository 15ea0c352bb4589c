"""The health agent: answers HAProxy's agent-check from this node's own facts, master or not.

HAProxy's galera servers carry ``agent-check agent-port 9200 agent-inter 1s``
(states/haproxy/haproxy.cfg.j2): every HAProxy connects to each Galera node's agent every
second and reads one line. The agent answers ``up`` while the node's latest Galera report (the
galera beacon's last poll, at most ``max_age`` seconds old) says Synced, and ``down #<why>``
otherwise: not Synced (a desynced or non-Primary node), mariadbd stopped, or a probe that hung
or failed (a stale report counts as down). HAProxy then takes a desynced node out with no
master and no NATS at all.

Only operational words: never ``ready``, ``drain`` or ``maint``. Those change the server's
administrative state, which belongs to the master's reconciler
(master/reactor/convergence/desired.py): an agent saying ``ready`` would clear the maint the
reconciler set. ``down`` only marks the server operationally down until the agent says
``up`` again.

Bounded: bound to the node's own address (never 0.0.0.0), the peer's input is never read, one
short line per connection written within 1 s, at most 64 connections at once (more are closed
at once). If the minion is down the port refuses, and HAProxy ignores a failing agent (its own
TCP check still decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hactl.log import get_logger
from hactl.schema import Field, SchemaError, check

log = get_logger("hactl.minion")

FIELDS = (
    Field("address", (str,), doc="the node's own address HAProxy connects to"),
    Field("port", (int,), required=False, default=9200, between=(1, 65535)),
    Field(
        "max_age",
        (int, float),
        required=False,
        default=3.0,
        between=(0.1, 60),
        doc="a Galera report older than this counts as down (a hung probe)",
    ),
)
MAX_CONNECTIONS = 64
WRITE_TIMEOUT = 1.0

#: the latest Galera snapshot and when it was taken (monotonic), or (None, 0) before the first
Source = Callable[[], tuple[Mapping[str, Any] | None, float]]


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    """minion.yaml ``health_agent``."""

    address: str
    port: int = 9200
    max_age: float = 3.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> AgentPolicy:
        """Checked with the one schema mechanism; the address must be one address."""
        values = check("health_agent", FIELDS, raw)
        try:
            ip = ipaddress.ip_address(values["address"])
        except ValueError:
            raise SchemaError("health_agent", "address", "must be an IP address") from None
        if ip.is_unspecified:
            raise SchemaError("health_agent", "address", "must be the node's own, not any")
        return cls(str(ip), int(values["port"]), float(values["max_age"]))


def verdict(snapshot: Mapping[str, Any] | None, age: float, max_age: float) -> str:
    """The line HAProxy reads: ``up`` or ``down #<why>`` -- operational words only."""
    if snapshot is None:
        return "down #no Galera report yet\n"
    if age > max_age:
        return f"down #Galera report {age:.1f}s old (probe hung?)\n"
    local = snapshot.get("local")
    if not isinstance(local, Mapping):
        return "down #no Galera facts\n"
    if not local.get("running"):
        return "down #mariadbd not running\n"
    if not local.get("synced"):
        state = str(local.get("local_state_comment") or local.get("cluster_status") or "?")
        return f"down #not Synced ({_clean(state)})\n"
    return "up\n"


def _clean(text: str) -> str:
    """No newline or control character reaches HAProxy's parser."""
    return "".join(c for c in text if c.isprintable())[:60]


class HealthAgent:
    """The TCP responder; :meth:`start` binds, :meth:`close` stops."""

    def __init__(self, policy: AgentPolicy, source: Source) -> None:
        self.policy = policy
        self.source = source
        self._server: asyncio.Server | None = None
        self._active = 0
        self.answered = 0
        self.refused = 0

    def line(self) -> str:
        """What HAProxy would read now."""
        snapshot, at = self.source()
        return verdict(snapshot, time.monotonic() - at, self.policy.max_age)

    async def start(self) -> None:
        """Listen on the node's address (raises OSError if it cannot)."""
        self._server = await asyncio.start_server(
            self._answer, self.policy.address, self.policy.port, reuse_address=True
        )
        log.info("health_agent_listening", address=self.policy.address, port=self.policy.port)

    async def _answer(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= MAX_CONNECTIONS:
            self.refused += 1
            writer.close()
            return
        self._active += 1
        try:
            writer.write(self.line().encode("ascii", "replace"))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            self.answered += 1
        except (OSError, TimeoutError):
            pass  # the checker went away: nothing to tell it
        finally:
            self._active -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
