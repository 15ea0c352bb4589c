"""The view's writes to KV, off the event path: pipelined, the latest value per key, retried.

Every change the reactor folds into its view is stored in KV (``HACTL_CLUSTER``) so other
masters, ``hactl status`` and the next master read it. The handler used to wait for each put
before the next event: one KV round trip per changing event, so a storm of 1,000 minions
flapping once a second outran the master (benchmarks/storm.py). Now:

- :meth:`ViewWriter.put` marks ``(node, aspect)`` dirty and returns a future the event's
  acknowledgement waits for (master/reactor/runtime.py): an event is never acknowledged
  before the view it changed is stored, so a master that dies loses nothing -- the event is
  delivered again;
- one batch at a time, every dirty key is written concurrently with the value the view holds
  *at the write*: ten changes of one key while a batch was in flight become one put, and a
  key's writes never overtake each other (KV never goes back to an older value);
- a put that fails (JetStream electing, a connection breaking) leaves the key dirty and its
  waiters waiting, retried every ``retry`` seconds: their events stay unacknowledged (the
  runtime tells the server they are in progress), so nothing is lost while KV is away.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from hactl.errors import BusError
from hactl.log import get_logger

log = get_logger("hactl.reactor")
Key = tuple[str, str]


class Store(Protocol):
    """What the writer needs of :class:`hactl.bus.viewstore.ViewStore`."""

    async def put(self, node: str, aspect: str, value: Any, at: float | None = None) -> None:
        """Store one value (as of ``at``); BusError when it cannot."""
        ...


class Source(Protocol):
    """What the writer reads of the view: the values and when each was reported."""

    nodes: dict[str, dict[str, Any]]
    as_of: dict[tuple[str, str], float]


class ViewWriter:
    """Writes the view's dirty keys to KV, one batch at a time (:meth:`run`)."""

    def __init__(self, store: Store, view: Source, batch: int = 512, retry: float = 1.0) -> None:
        self.store, self.view, self.batch, self.retry = store, view, batch, retry
        self._dirty: dict[Key, None] = {}  # insertion-ordered set
        self._waiters: dict[Key, list[asyncio.Future[None]]] = {}
        self._failing: set[Key] = set()
        self._wake = asyncio.Event()
        self.writes = 0  # puts done (fewer than the changes: coalesced)

    def put(self, node: str, aspect: str) -> asyncio.Future[None]:
        """Mark ``(node, aspect)`` for writing; the future is done once a write of the
        view's value at or after this call succeeded."""
        key = (node, aspect)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(fut)
        self._dirty[key] = None
        self._wake.set()
        return fut

    @property
    def dirty(self) -> int:
        """Keys waiting to be written."""
        return len(self._dirty)

    async def run(self) -> None:
        """Write batches for ever (cancelled when the reactor stops)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                if await self._batch():
                    continue
                await asyncio.sleep(self.retry)  # KV refused something: not in a busy loop

    async def flush(self, timeout: float) -> bool:
        """Write what is dirty, bounded (a stop); True when nothing is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._dirty and loop.time() < deadline:
            try:
                ok = await asyncio.wait_for(self._batch(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
            if not ok:
                await asyncio.sleep(min(self.retry, max(0.0, deadline - loop.time())))
        if self._dirty:
            keys = sorted(f"{n}.{a}" for n, a in self._dirty)
            log.warning("view_left_unsaved", keys=keys[:50], count=len(keys))
        return not self._dirty

    async def _batch(self) -> bool:
        """One batch; False when a put failed (its key stays dirty)."""
        keys = list(self._dirty)[: self.batch]
        for key in keys:
            del self._dirty[key]
        waiting = {key: self._waiters.pop(key, []) for key in keys}
        try:
            results = await asyncio.gather(*(self._write(k) for k in keys), return_exceptions=True)
        except asyncio.CancelledError:  # the reactor stops mid-batch: its flush writes them
            for key in keys:
                self._again(key, waiting[key])
            raise
        ok = True
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                ok = False
                self._again(key, waiting[key])
                if key not in self._failing:
                    self._failing.add(key)
                    detail = result.detail if isinstance(result, BusError) else repr(result)
                    log.warning("view_not_saved", node=key[0], aspect=key[1], error=detail)
                continue
            if key in self._failing:
                self._failing.discard(key)
                log.info("view_saved_late", node=key[0], aspect=key[1])
            for fut in waiting[key]:
                if not fut.done():
                    fut.set_result(None)
        return ok

    def _again(self, key: Key, waiting: list[asyncio.Future[None]]) -> None:
        """``key`` was not stored: dirty again, its waiters still waiting (first in line)."""
        self._waiters[key] = waiting + self._waiters.get(key, [])
        self._dirty.setdefault(key, None)

    async def _write(self, key: Key) -> None:
        node, aspect = key
        value = self.view.nodes.get(node, {}).get(aspect)
        if value is None:  # gone from the view (refused, pruned): nothing to store
            return
        await self.store.put(node, aspect, value, self.view.as_of.get(key))
        self.writes += 1
