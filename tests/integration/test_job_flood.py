"""Trust III: a minion flooding job returns (a new job id per message: no per-subject limit
bounds it) on a real server with auth and TLS. Job traffic lives in its own stream, so the
flood evicts no event of another node; the master's quota purges the flooder down to its
newest returns and stores one ``job_flood`` alert; another node's later return stays."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from hactl.auth.perms import EVENTS_STREAM, JOBS_STREAM
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.master.jobquota import JobQuota, QuotaKeeper
from hactl.wire.envelope import decode, new_event
from hactl.wire.ids import new_id
from tests.integration.conftest import TEST_MASTERS, NatsHandle

pytestmark = pytest.mark.integration

EVENTS_CAP = 256 * 1024  # the flood is 8x this: in one stream it would evict everything
JOBS_CAP = 128 * 1024
FLOOD = 2000
PAD = "x" * 1000
KEEP = 20


async def _subjects(bus: Bus, stream: str, subject: str) -> int:
    info = await bus.js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def test_a_job_return_flood_evicts_no_other_nodes_events(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """ctl1 stores 2,000 job returns of 1 KiB (2 MiB, the event stream holds 256 KiB): ctl2's
    beacon and heartbeat stay, the event stream's size is untouched, ctl1 keeps at most its
    newest returns plus one purge interval, one alert names ctl1, and ctl2's return stays."""
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    master = await Bus.connect(url, nats.auth(TEST_MASTERS[0]), name="flood-master")
    ctl1 = await Bus.connect(url, nats.auth("ctl1"), name="flood-ctl1")
    ctl2 = await Bus.connect(url, nats.auth("ctl2"), name="flood-ctl2")
    keeper = QuotaKeeper(master, JobQuota(limit=KEEP, window_s=60, purge_every_s=0.2))
    try:
        await ensure_stream(master, StreamSettings(max_bytes=EVENTS_CAP, jobs_max_bytes=JOBS_CAP))
        await keeper.start()
        beacon = await ctl2.persist(new_event("hactl/beacon/ctl2/vrrp", "ctl2", {"s": "MASTER"}))
        await ctl2.persist(new_event("hactl/minion/ctl2/heartbeat", "ctl2", {}))
        events_before = (await master.js.stream_info(EVENTS_STREAM)).state.bytes
        t0 = time.monotonic()
        for _ in range(FLOOD):
            await ctl1.persist(new_event(f"hactl/job/{new_id()}/ret/ctl1", "ctl1", {"p": PAD}))
        flood_s = time.monotonic() - t0
        await asyncio.sleep(0.5)  # the last purge
        # the events: untouched by the flood
        info = await master.js.stream_info(EVENTS_STREAM)
        kept = await master.js.get_last_msg(EVENTS_STREAM, "hactl.beacon.ctl2.vrrp")
        assert int(kept.seq) == beacon
        assert await master.js.get_last_msg(EVENTS_STREAM, "hactl.minion.ctl2.heartbeat")
        alert = await master.js.get_last_msg(EVENTS_STREAM, "hactl.event.alert.job_flood")
        event = decode(alert.data, alert.subject)
        assert event.data["node"] == "ctl1" and event.data["kept"] == KEEP, event.data
        assert info.state.bytes - events_before < 4096  # one alert, nothing of the flood
        # the flooder keeps its newest returns (plus what came since the last purge)
        left = await _subjects(master, JOBS_STREAM, "hactl.job.*.ret.ctl1")
        assert left < FLOOD / 4, left
        assert keeper.purges >= 1
        # another node's return after the flood is stored and stays
        ret = new_event(f"hactl/job/{new_id()}/ret/ctl2", "ctl2", {"ok": True})
        seq = await ctl2.persist(ret)
        await asyncio.sleep(0.5)
        got = await master.js.get_last_msg(JOBS_STREAM, ret.subject)
        assert int(got.seq) == seq
        print(
            f"job flood: {FLOOD} returns of 1 KiB in {flood_s:.2f} s; ctl2's events kept, "
            f"event stream +{info.state.bytes - events_before} B (the alert); ctl1 left with "
            f"{left} returns after {keeper.purges} purges"
        )
    finally:
        await keeper.stop()
        for bus in (ctl2, ctl1, master):
            await bus.close()
        await asyncio.to_thread(server.stop)


async def test_job_returns_are_not_stored_with_the_events(nats: NatsHandle) -> None:
    """A minion's job return lands in HACTL_JOBS, never in HACTL_EVENTS."""
    master = await Bus.connect(nats.url, nats.auth(TEST_MASTERS[0]), name="jobs-master")
    ctl3 = await Bus.connect(nats.url, nats.auth("ctl3"), name="jobs-ctl3")
    try:
        await ensure_stream(master, StreamSettings())
        ret = new_event(f"hactl/job/{new_id()}/ret/ctl3", "ctl3", {"ok": True})
        seq = await ctl3.persist(ret)
        assert int((await master.js.get_last_msg(JOBS_STREAM, ret.subject)).seq) == seq
        with pytest.raises(NotFoundError):
            await master.js.get_last_msg(EVENTS_STREAM, ret.subject)
    finally:
        await ctl3.close()
        await master.close()
