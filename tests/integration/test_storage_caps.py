"""Trust III storage caps, on a real server with auth and TLS: the audit stream, full,
refuses new records (so the audited action is refused) and the master alerts, while every
other write still works; the server's JetStream storage is capped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hactl.auth.perms import AUDIT_STREAM, EVENTS_STREAM
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.bus.jetstream import ensure_audit_stream
from hactl.errors import BusError
from hactl.master.hub import Hub
from hactl.wire.envelope import decode, new_event
from tests.integration.conftest import TEST_MASTERS, NatsHandle

pytestmark = pytest.mark.integration

CAP = 8 * 1024


async def test_a_full_audit_stream_refuses_records_and_alerts(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """Fill the audit stream (an 8 KiB cap here): the next audited action is refused with the
    server's reason, nothing already recorded is dropped, the master's check fires
    ``audit_stream_full`` once, events and KV writes go on."""
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    master = await Bus.connect(url, nats.auth(TEST_MASTERS[0]), name="caps-master")
    admin = await Bus.connect(url, nats.auth("admin"), name="caps-admin")
    try:
        await ensure_stream(master, StreamSettings())
        await ensure_audit_stream(master, max_bytes=CAP)
        stored, refusal = 0, ""
        for _ in range(200):
            try:
                await admin.audit("fire", {"tag": "hactl/event/drill", "pad": "x" * 200})
            except BusError as exc:
                refusal = str(exc)
                break
            stored += 1
        assert stored > 5 and "maximum bytes" in refusal, refusal
        info = await master.js.stream_info(AUDIT_STREAM)
        assert info.state.messages == stored and info.state.bytes <= CAP  # none dropped
        hub = Hub(master, StreamSettings())
        await hub.check_audit()
        await hub.check_audit()  # once, not per look
        alert = await master.js.get_last_msg(EVENTS_STREAM, "hactl.event.alert.audit_stream_full")
        event = decode(alert.data, alert.subject)
        assert event.data["max_bytes"] == CAP and "refused" in event.data["reason"]
        assert int(alert.seq) == (await master.js.stream_info(EVENTS_STREAM)).state.last_seq
        # nothing else is affected: events are stored, the view bucket written
        assert await admin.persist(new_event("hactl/event/drill", "admin", {})) > 0
    finally:
        await admin.close()
        await master.close()
        await asyncio.to_thread(server.stop)


def test_the_servers_jetstream_storage_is_capped(tmp_path: Path, nats: NatsHandle) -> None:
    """The embedded server's config caps JetStream storage, and the store account has a cap
    of its own (every server hactl runs and every exported config)."""
    options = ServerOptions(data_dir=tmp_path / "n", auth=ServerAuth(nats.auth_dir), port=-1)
    assert "max_file_store: 8589934592" in options.config_text()
    block = (nats.auth_dir / "nats-auth.conf").read_text()
    assert "jetstream: { max_file: 8G, max_mem: 512M }" in block
