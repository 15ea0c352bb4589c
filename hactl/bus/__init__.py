"""The NATS bus: client wrapper, JetStream streams, KV and consumers, the embedded server.

Nothing outside this package imports nats-py: it speaks :class:`Bus`, :class:`Kv` and
:class:`Delivery`, and every failure is a :class:`~hactl.errors.BusError`.
"""

from hactl.auth.perms import EVENTS_STREAM
from hactl.bus.client import Bus
from hactl.bus.inbound import Inbound
from hactl.bus.jetstream import StreamSettings, bind_bucket, ensure_stream, kv_bucket
from hactl.bus.kv import KeyConflict, Kv, KvEntry, KvStore, NoBucket

__all__ = [
    "EVENTS_STREAM",
    "Bus",
    "Inbound",
    "KeyConflict",
    "Kv",
    "KvEntry",
    "KvStore",
    "NoBucket",
    "StreamSettings",
    "bind_bucket",
    "ensure_stream",
    "kv_bucket",
]
