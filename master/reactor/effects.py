"""The reactor's :class:`~hactl.master.reactor.rules.actions.Effects` over NATS: publish, command a
minion, and the create-once leases and short-TTL locks in JetStream KV."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from hactl.bus import Bus, KeyConflict, KvStore
from hactl.errors import BusError
from hactl.log import get_logger
from hactl.wire.commands import CommandReply
from hactl.wire.envelope import Event
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.reactor")
LOCK_TTL = 15.0  # a held lock is re-put every 5 s; a dead master's lock expires by itself


class NatsEffects:
    """:class:`master.reactor.actions.Effects` over NATS and the lease bucket."""

    def __init__(self, bus: Bus, leases: KvStore, locks: KvStore | None = None) -> None:
        self.bus = bus
        self.leases = leases
        self.locks = locks if locks is not None else leases
        self._held: dict[str, asyncio.Task[None]] = {}

    def _bucket(self, name: str) -> KvStore:
        return self.locks if name.startswith("lock.") else self.leases

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        """Core publish with a Nats-Msg-Id: the stream keeps one copy."""
        await self.bus.publish(event, msg_id=msg_id)

    async def request(
        self, target: str, cmd: str, args: dict[str, Any], timeout: float
    ) -> CommandReply:
        """A command to a minion, sent as the master."""
        return await self.bus.request(target, cmd, args, timeout=timeout, sender=MASTER_ID)

    async def lease(self, name: str, value: bytes | None = None) -> bool:
        """Create-once. Rule locks (``lock.*``) live in a short-TTL bucket and are kept alive
        while held, so the lock of a master that dies frees itself within LOCK_TTL."""
        bucket = self._bucket(name)
        try:
            await bucket.create(name, value if value is not None else str(time.time()).encode())
        except KeyConflict:
            return False  # taken
        except BusError as exc:
            # JetStream busy electing a leader after a server died: not ours (yet); the
            # caller retries within its lock_wait
            log.warning("lease_unavailable", lease=name, error=exc.detail)
            return False
        if bucket is self.locks and self.locks is not self.leases:
            self._held[name] = asyncio.create_task(self._keep(name))
        return True

    async def _keep(self, name: str) -> None:
        while True:
            await asyncio.sleep(LOCK_TTL / 3)
            with contextlib.suppress(BusError):
                await self.locks.put(name, str(time.time()).encode())

    async def lease_record(self, name: str) -> bytes | None:
        """The live value of a lease (None when absent or deleted)."""
        try:
            entry = await self._bucket(name).get(name, timeout=2.0)
        except BusError:
            return None
        return entry.value if entry is not None else None

    async def release(self, name: str) -> None:
        """Delete (a purge would forget the history; a delete marker is enough)."""
        keeper = self._held.pop(name, None)
        if keeper is not None:
            keeper.cancel()
        with contextlib.suppress(BusError):
            await self._bucket(name).delete(name)  # if this fails, the TTL frees it
