"""The NATS bus: client wrapper, JetStream stream and KV, and the embedded server."""

from hactl.bus.client import Bus
from hactl.bus.jetstream import EVENTS_STREAM, StreamSettings, ensure_stream, kv_bucket

__all__ = ["EVENTS_STREAM", "Bus", "StreamSettings", "ensure_stream", "kv_bucket"]
