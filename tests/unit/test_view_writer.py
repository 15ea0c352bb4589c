"""The view's writes to KV: off the event path, the latest value per key, never lost."""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.errors import BusError
from hactl.master.reactor.view.cluster import ClusterView
from hactl.master.reactor.view.writer import ViewWriter


class FlakyStore:
    """A view store that refuses writes while ``down`` and records the others."""

    def __init__(self) -> None:
        self.down = False
        self.puts: list[tuple[str, str, Any]] = []
        self.gate: asyncio.Event | None = None  # set: every put waits for it

    async def put(self, node: str, aspect: str, value: Any, at: float | None = None) -> None:
        """Refused while down, recorded otherwise (after the gate, if any)."""
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise BusError("nats://test", "nats: connection closed")
        self.puts.append((node, aspect, value))


async def test_changes_while_a_write_is_in_flight_become_one_put_of_the_latest() -> None:
    """Ten changes of one key while its first write waits on KV: two puts in all (the first,
    then the latest), in that order; every waiter is done once the latest is stored."""
    view, store = ClusterView(), FlakyStore()
    writer = ViewWriter(store, view)
    store.gate = asyncio.Event()
    task = asyncio.create_task(writer.run())
    try:
        view.nodes = {"ctl1": {"vrrp": {"v": 0}}}
        waiters = [writer.put("ctl1", "vrrp")]
        await asyncio.sleep(0.01)  # the first batch is in flight, held by the gate
        for v in range(1, 10):
            view.nodes["ctl1"]["vrrp"] = {"v": v}
            waiters.append(writer.put("ctl1", "vrrp"))
        store.gate.set()
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        assert store.puts == [("ctl1", "vrrp", {"v": 0}), ("ctl1", "vrrp", {"v": 9})]
        assert writer.writes == 2 and writer.dirty == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_refused_write_keeps_its_waiters_until_kv_takes_it() -> None:
    """KV refuses: the key stays dirty and its waiter (an event's acknowledgement) waits;
    once KV takes writes again, the retry stores the value the view holds then, and a key
    the view no longer has is dropped with its waiter released."""
    view, store = ClusterView(), FlakyStore()
    store.down = True
    writer = ViewWriter(store, view, retry=0.05)
    task = asyncio.create_task(writer.run())
    try:
        view.nodes = {"ctl1": {"vrrp": {"v": 1}}, "ctl2": {"galera": {"g": 1}}}
        first = writer.put("ctl1", "vrrp")
        gone = writer.put("ctl3", "haproxy")  # not in the view
        other = writer.put("ctl2", "galera")
        await asyncio.sleep(0.2)
        assert not first.done() and not other.done() and gone.done()
        assert writer.dirty == 2 and store.puts == []
        view.nodes["ctl1"]["vrrp"] = {"v": 2}
        store.down = False
        await asyncio.wait_for(asyncio.gather(first, other), 5)
        assert sorted(store.puts) == [("ctl1", "vrrp", {"v": 2}), ("ctl2", "galera", {"g": 1})]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_stop_flushes_what_is_dirty_within_its_bound() -> None:
    """flush() writes what is dirty; with KV away it gives up at its bound and says so."""
    view, store = ClusterView(), FlakyStore()
    writer = ViewWriter(store, view, retry=0.05)
    view.nodes = {"ctl1": {"vrrp": {"v": 1}}}
    writer.put("ctl1", "vrrp")
    assert await writer.flush(1.0) and store.puts == [("ctl1", "vrrp", {"v": 1})]
    store.down = True
    writer.put("ctl1", "vrrp")
    assert not await writer.flush(0.3) and writer.dirty == 1


async def test_a_batch_cancelled_by_a_stop_is_written_by_the_flush() -> None:
    """The writer's task is cancelled (the reactor stops) while a batch waits on KV: its keys
    are dirty again with their waiters, and the stop's flush stores them."""
    view, store = ClusterView(), FlakyStore()
    writer = ViewWriter(store, view)
    store.gate = asyncio.Event()
    view.nodes = {"ctl1": {"vrrp": {"v": 1}}}
    waiter = writer.put("ctl1", "vrrp")
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.01)  # the batch is in flight, held by the gate
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert writer.dirty == 1 and not waiter.done()
    store.gate.set()
    assert await writer.flush(1.0)
    assert waiter.done() and store.puts == [("ctl1", "vrrp", {"v": 1})]
