"""The NATS bus: client wrapper, JetStream stream and KV, and the embedded server."""

from hactl.auth.perms import EVENTS_STREAM
from hactl.bus.client import Bus
from hactl.bus.jetstream import StreamSettings, ensure_stream, kv_bucket

__all__ = ["EVENTS_STREAM", "Bus", "StreamSettings", "ensure_stream", "kv_bucket"]
