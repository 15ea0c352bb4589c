"""The cluster view's store: KV ``HACTL_CLUSTER``, one key per node and aspect.

``node.<id>.<aspect>`` holds the msgpack of what the view folded in (a beacon's items or the
minion's liveness record), wrapped with ``at``: when the stream stored the event the fact came
from (server time), so that an older report -- a redelivery after a master restart, another
master's lagging write -- never overwrites a newer one. A bare value (older hactl) has no
``at``. Masters write and watch it; a restarted master and ``hactl status``
load it -- all through this one class, so the key format and the decoding live in one place.
A value that is not msgpack is reported (``on_bad``), never fatal; what a value may hold is
the view's business (master/reactor/view/cluster.py types it at its boundary).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import msgpack

from hactl.auth.perms import VIEW_BUCKET
from hactl.bus.jetstream import kv_bucket
from hactl.bus.kv import Kv
from hactl.errors import BusError

if TYPE_CHECKING:
    from hactl.bus.client import Bus

ASPECTS = ("vrrp", "haproxy", "galera", "rabbitmq", "service", "supervisor", "minion")
Entry = tuple[str, str, Any, float | None]  # node, aspect, decoded value, as of (server time)
_WRAP = "__hactl_view__"  # marks a wrapped value (an item cannot be named so: names are ids)
OnBad = Callable[[str, str], None]  # key, reason


def kv_key(node: str, aspect: str) -> str:
    """The KV key of one node's aspect."""
    return f"node.{node}.{aspect}"


def parse_kv_key(key: str) -> tuple[str, str] | None:
    """``node.ctl1.galera`` -> (ctl1, galera); None for any other key."""
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != "node" or parts[2] not in ASPECTS:
        return None
    return parts[1], parts[2]


def _decode(key: str, raw: bytes, on_bad: OnBad) -> Entry | None:
    where = parse_kv_key(key)
    if where is None or not raw:
        return None
    try:
        value = msgpack.unpackb(raw, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        on_bad(key, f"not msgpack: {exc}")
        return None
    if isinstance(value, dict) and value.get(_WRAP) == 1 and "v" in value:
        at = value.get("at")
        at = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
        return where[0], where[1], value["v"], at
    return where[0], where[1], value, None


class ViewStore:
    """Read (direct gets, no consumer: operators may read too), write and watch the view."""

    def __init__(self, bus: Bus, kv: Kv | None = None) -> None:
        self.bus = bus
        self.kv = kv  # bound by :meth:`open` (writers and watchers)
        #: key -> the bytes this process last wrote there: the watch skips them coming back
        #: (the view already holds them; folding them in again re-checked every VRRP change,
        #: invalidated the facts and poked the reconciler a second time)
        self._mine: dict[str, bytes] = {}
        self.echoes = 0  # own writes skipped on the watch

    async def open(self, replicas: int = 1) -> ViewStore:
        """Bind the bucket, creating it on first use (masters)."""
        self.kv = await kv_bucket(self.bus, VIEW_BUCKET, replicas=replicas)
        return self

    async def load(self, on_bad: OnBad) -> list[Entry]:
        """Every stored value. Raises :class:`BusError` when the bucket does not exist."""
        values = await self.bus.read_bucket(VIEW_BUCKET)
        return [e for key, raw in values.items() if (e := _decode(key, raw, on_bad))]

    async def put(self, node: str, aspect: str, value: Any, at: float | None = None) -> None:
        """Store one value (as of ``at``); a failure is a :class:`BusError` (the caller
        decides)."""
        if self.kv is None:
            raise BusError(self.bus.url, "view store not opened")
        packed = msgpack.packb({_WRAP: 1, "v": value, "at": at}, use_bin_type=True)
        key = kv_key(node, aspect)
        self._mine[key] = packed  # before the write: the watch may deliver it before the ack
        await self.kv.put(key, packed)

    async def watch(self, on_bad: OnBad) -> AsyncIterator[Entry]:
        """Every later change another writer made (this store's own writes are skipped)."""
        if self.kv is None:
            raise BusError(self.bus.url, "view store not opened")
        async for entry in self.kv.watch():
            if entry.deleted:
                continue
            if self._mine.get(entry.key) == entry.value:
                self.echoes += 1
                continue
            if (decoded := _decode(entry.key, entry.value, on_bad)) is not None:
                yield decoded
