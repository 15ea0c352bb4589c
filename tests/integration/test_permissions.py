"""The permission table, enforced by a real nats-server: every identity is refused what it must
not do, and can do what it needs (hactl/auth/perms.py, docs/security.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgpack
import nats as natspy
import pytest
from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from hactl.auth.client import ClientAuth
from hactl.auth.perms import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    LEASE_BUCKET,
    MAINT_BUCKET,
    REACTOR_CONSUMER,
    REACTOR_DELIVER,
    VIEW_BUCKET,
    inbox_prefix,
)
from hactl.bus import Bus, kv_bucket
from hactl.errors import BusError, PermissionRefused
from hactl.wire import commands as wcmd
from hactl.wire.envelope import new_event
from hactl.wire.leases import BootstrapLease, bootstrap_key, encode_bootstrap
from tests.integration.conftest import NatsHandle, master_setup

REFUSAL_WAIT = 2.0


@dataclass
class Conn:
    """A raw nats-py connection as one identity, with the server's errors collected."""

    nc: Client
    key: str
    errors: list[str] = field(default_factory=list)

    async def refused(self, what: str) -> bool:
        """True once the server reported a permissions violation naming ``what``."""
        await self.nc.flush(timeout=2)
        for _ in range(int(REFUSAL_WAIT / 0.05)):
            if any("permissions violation" in e and what.lower() in e for e in self.errors):
                return True
            await asyncio.sleep(0.05)
        return False

    async def pub_refused(self, subject: str, body: bytes = b"{}", reply: str = "") -> bool:
        """Publish; True when the server refused it."""
        await self.nc.publish(subject, body, reply=reply)
        return await self.refused(f'publish to "{subject}"')

    async def sub_refused(self, subject: str) -> bool:
        """Subscribe; True when the server refused it."""
        await self.nc.subscribe(subject)
        return await self.refused(f'subscription to "{subject}"')


async def _conn(url: str, auth: ClientAuth) -> Conn:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await asyncio.wait_for(
        natspy.connect(url, allow_reconnect=False, error_cb=on_error, **auth.connect_options()), 10
    )
    return Conn(nc, auth.public_key(), errors)


@pytest.fixture
async def conns(nats: NatsHandle) -> AsyncIterator[dict[str, Conn]]:
    """One raw connection per production identity, and the buckets a master would create."""
    await master_setup(nats.url, nats)
    names = ("ctl1", "ctl2", "master", "admin", "operator")
    out = {n: await _conn(nats.url, nats.auth(n)) for n in names}
    try:
        yield out
    finally:
        for c in out.values():
            await c.nc.close()


def _consumer(deliver: str) -> bytes:
    config = {"deliver_subject": deliver, "ack_policy": "none"}
    return json.dumps({"stream_name": EVENTS_STREAM, "config": config}).encode()


# what nobody but a master/admin may do, and what nobody at all may do to the audit trail
STREAM_ABUSE = [
    f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}",
    f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}",
    f"$JS.API.STREAM.SNAPSHOT.{EVENTS_STREAM}",
    f"$JS.API.STREAM.RESTORE.{EVENTS_STREAM}",
    f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.{REACTOR_CONSUMER}",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{EVENTS_STREAM}.{REACTOR_CONSUMER}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.{REACTOR_CONSUMER}",
    f"$KV.{VIEW_BUCKET}.node.ctl1.vrrp",
    f"$KV.{LEASE_BUCKET}.galera.bootstrap",
    f"$JS.API.DIRECT.GET.KV_{LEASE_BUCKET}",
]
AUDIT_ABUSE = [
    f"$JS.API.STREAM.PURGE.{AUDIT_STREAM}",
    f"$JS.API.STREAM.DELETE.{AUDIT_STREAM}",
    f"$JS.API.STREAM.UPDATE.{AUDIT_STREAM}",
    f"$JS.API.STREAM.MSG.DELETE.{AUDIT_STREAM}",
    f"$JS.API.STREAM.SNAPSHOT.{AUDIT_STREAM}",
]


async def test_no_credentials_or_no_ca_cannot_connect(nats: NatsHandle) -> None:
    """No nkey: authorization violation; no CA (system trust only) or plain TCP: no session."""
    with pytest.raises((nats_errors.Error, OSError, TimeoutError)):
        await asyncio.wait_for(
            natspy.connect(nats.url, allow_reconnect=False, max_reconnect_attempts=0), 5
        )
    no_ca = ClientAuth(creds=nats.auth("admin").creds, tls_ca=None)
    with pytest.raises(BusError, match=r"cannot connect|not reachable"):
        await Bus.connect(nats.url, no_ca, name="no-ca", timeout=3)
    plain = {**nats.auth("admin").connect_options(), "tls": None, "tls_handshake_first": False}
    with pytest.raises((nats_errors.Error, OSError, TimeoutError)):
        await asyncio.wait_for(natspy.connect(nats.url, allow_reconnect=False, **plain), 5)


async def test_minion_is_refused_everything_but_its_own(conns: dict[str, Conn]) -> None:
    """A minion cannot speak for another, command anyone, touch JetStream or read others."""
    m = conns["ctl1"]
    assert not await m.pub_refused("hactl.beacon.ctl1.vrrp")  # the probe itself is not blind
    assert not await m.sub_refused("hactl.cmd.ctl1")
    for subject in (
        "hactl.beacon.ctl2.vrrp",
        "hactl.minion.ctl2.heartbeat",
        "hactl.minion.ctl1.lost",
        "hactl.beacon.ctl1.made-up",
        "hactl.cmd.ctl2",
        "hactl.cmd.master",
        "hactl.reactor.x.done",
        "hactl.event.x",
        "hactl.job.j1.new",
        "hactl.job.j1.ret.ctl2",
        *STREAM_ABUSE,
        *AUDIT_ABUSE,
        f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
    ):
        assert await m.pub_refused(subject), subject
    for subject in (
        "hactl.cmd.ctl2",
        "hactl.beacon.>",
        "hactl.cmd.*",
        REACTOR_DELIVER,
        f"{inbox_prefix(conns['admin'].key)}.>",
        "_INBOX.>",
        ">",
    ):
        assert await m.sub_refused(subject), subject


async def test_a_minion_reads_bootstrap_leases_and_nothing_else(
    nats: NatsHandle, conns: dict[str, Conn]
) -> None:
    """The minion's JetStream calls: direct gets of a Galera bootstrap lease and of its own
    (and cluster-wide) maintenance windows. Writing either, reading a rule lock, the view or
    another node's windows, or a by-sequence get are all refused."""
    admin = await Bus.connect(nats.url, nats.auth("admin"), name="lease-admin")
    minion = await Bus.connect(nats.url, nats.auth("ctl1"), name="lease-minion")
    try:
        leases = await kv_bucket(admin, LEASE_BUCKET, ttl_s=600)
        key = bootstrap_key("6f0d2c3e-0000-4000-8000-000000000001", 7)
        record = encode_bootstrap(BootstrapLease("ctl1", key.split(".")[1], 7, "master", 1.0))
        await leases.put(key, record)
        await leases.put("lock.r.x", b"1")
        assert await minion.read_key(LEASE_BUCKET, key) == record
        assert await minion.read_key(LEASE_BUCKET, bootstrap_key(key.split(".")[1], 8)) is None
        with pytest.raises(BusError):
            await minion.read_key(LEASE_BUCKET, "lock.r.x")
        with pytest.raises(BusError):
            await minion.read_key(VIEW_BUCKET, "node.ctl1.vrrp")
        probe = conns["ctl1"]
        assert await probe.pub_refused(f"$KV.{LEASE_BUCKET}.{key}", record)
        assert await probe.pub_refused(f"$JS.API.DIRECT.GET.KV_{LEASE_BUCKET}", b'{"seq": 1}')
        assert await minion.read_key(LEASE_BUCKET, key) == record  # unchanged
        windows = await kv_bucket(admin, MAINT_BUCKET)
        await windows.put("maint.ctl1.haproxy", b"{}")
        await windows.put("maint.ctl2.haproxy", b"{}")
        assert await minion.read_key(MAINT_BUCKET, "maint.ctl1.haproxy") == b"{}"
        assert await minion.read_key(MAINT_BUCKET, "maint.all.all") is None
        with pytest.raises(BusError):  # another node's windows are not its business
            await minion.read_key(MAINT_BUCKET, "maint.ctl2.haproxy")
        assert await probe.pub_refused(f"$KV.{MAINT_BUCKET}.maint.ctl1.haproxy", b"{}")
    finally:
        await minion.close()
        await admin.close()


async def test_operator_reads_and_fires_only(conns: dict[str, Conn]) -> None:
    """An operator commands nobody, forges nothing, creates no consumer (so no push consumer
    can deliver onto hactl.cmd.*), and cannot read leases or others' inboxes."""
    op = conns["operator"]
    for subject in (
        "hactl.cmd.ctl1",
        "hactl.cmd.master",
        "hactl.beacon.ctl1.vrrp",
        "hactl.minion.ctl1.lost",
        "hactl.reactor.x.done",
        "hactl.job.j.new",
        f"hactl.audit.{conns['admin'].key}.fire",
        *STREAM_ABUSE,
        *AUDIT_ABUSE,
        f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",
    ):
        assert await op.pub_refused(subject, _consumer("hactl.cmd.ctl1")), subject
    for subject in (
        "hactl.cmd.ctl1",
        "hactl.cmd.>",
        REACTOR_DELIVER,
        f"{inbox_prefix(conns['master'].key)}.>",
        "_INBOX.>",
    ):
        assert await op.sub_refused(subject), subject


async def test_admin_and_master_cannot_forge_or_erase(conns: dict[str, Conn]) -> None:
    """Admins and masters command minions, but never speak for one, read another's commands
    (secrets), write another person's audit records, or erase the audit trail."""
    for name in ("admin", "master"):
        c = conns[name]
        for subject in (
            "hactl.beacon.ctl1.vrrp",
            "hactl.minion.ctl1.heartbeat",
            "hactl.job.j.ret.ctl1",
            f"hactl.audit.{conns['operator'].key}.fire",
            *AUDIT_ABUSE,
        ):
            assert await c.pub_refused(subject), (name, subject)
        for subject in ("hactl.cmd.ctl1", f"{inbox_prefix(conns['operator'].key)}.>"):
            assert await c.sub_refused(subject), (name, subject)
    assert await conns["admin"].pub_refused("hactl.reactor.x.done")
    assert await conns["admin"].sub_refused(REACTOR_DELIVER)


async def test_a_minion_cannot_answer_for_another(nats: NatsHandle, conns: dict[str, Conn]) -> None:
    """ctl2 cannot hear ctl1's commands, so it cannot answer in ctl1's place (first reply
    wins); the real ctl1 answers."""
    ctl2 = conns["ctl2"]
    assert await ctl2.sub_refused("hactl.cmd.ctl1")
    minion = await Bus.connect(nats.url, nats.auth("ctl1"), name="real-ctl1")
    admin = await Bus.connect(nats.url, nats.auth("admin"), name="perm-admin")
    try:

        async def handler(req: wcmd.CommandRequest) -> wcmd.CommandReply:
            return wcmd.CommandReply(jid=req.jid, ok=True, result={"me": "ctl1"})

        await minion.serve("ctl1", handler)
        reply = await admin.request("ctl1", "test.ping")
        assert reply.ok and reply.result == {"me": "ctl1"}
    finally:
        await minion.close()
        await admin.close()


async def test_what_each_identity_needs_works(nats: NatsHandle) -> None:
    """Minion: store its events, job returns. Operator: fire, audit itself, read the view and
    the stream. Admin: commands, KV. Master: the shared consumer on its fixed subject."""
    minion = await Bus.connect(nats.url, nats.auth("ctl1"), name="need-minion")
    op = await Bus.connect(nats.url, nats.auth("operator"), name="need-operator")
    admin = await Bus.connect(nats.url, nats.auth("admin"), name="need-admin")
    master = await Bus.connect(nats.url, nats.auth("master"), name="need-master")
    try:
        assert await minion.persist(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"s": 1})) > 0
        assert await minion.persist(new_event("hactl/job/j1/ret/ctl1", "ctl1", {"ok": True})) > 0
        assert await op.persist(new_event("hactl/event/drill", "master", {})) > 0
        await op.audit("fire", {"tag": "hactl/event/drill"})
        view = await kv_bucket(admin, VIEW_BUCKET)
        await view.put("node.ctl1.vrrp", msgpack.packb({"state": "MASTER"}))
        assert "node.ctl1.vrrp" in await op.read_bucket(VIEW_BUCKET)
        got: list[str] = []

        async def on_event(e: object) -> None:
            got.append(e.tag)  # type: ignore[attr-defined]

        from datetime import UTC, datetime, timedelta

        await op.replay(
            "hactl/event/drill", datetime.now(UTC) - timedelta(minutes=5), on_event, EVENTS_STREAM
        )
        assert "hactl/event/drill" in got
        delivered: list[Msg] = []

        async def on_delivery(msg: Msg) -> None:
            delivered.append(msg)

        await master.nc.subscribe(REACTOR_DELIVER, queue=REACTOR_CONSUMER, cb=on_delivery)
        await master.sync()
    finally:
        for b in (minion, op, admin, master):
            await b.close()


async def test_a_refused_publish_is_a_clear_error(nats: NatsHandle) -> None:
    """A JetStream publish the server refuses says 'permission denied', not a bare timeout."""
    op = await Bus.connect(nats.url, nats.auth("operator"), name="refused")
    try:
        with pytest.raises(
            PermissionRefused, match=r"may not publish to hactl\.beacon\.ctl1\.vrrp"
        ):
            await op.persist(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {}), timeout=2)
    finally:
        await op.close()


async def test_a_server_delivery_aimed_at_a_minion_is_never_run(
    nats: NatsHandle, conns: dict[str, Conn]
) -> None:
    """An operator's direct get whose reply points at hactl.cmd.ctl1 makes the server deliver a
    stored message there (nats-server does not check reply subjects); the minion refuses it
    unread: no identity inbox, JetStream headers."""
    minion = await Bus.connect(nats.url, nats.auth("ctl1"), name="victim")
    op = await Bus.connect(nats.url, nats.auth("operator"), name="attacker")
    ran: list[str] = []
    try:

        async def handler(req: wcmd.CommandRequest) -> wcmd.CommandReply:
            ran.append(req.cmd)
            return wcmd.CommandReply(jid=req.jid, ok=True, result={})

        await minion.serve("ctl1", handler)
        payload = wcmd.encode_request(wcmd.CommandRequest(cmd="haproxy.runtime", args={}))
        seq = await op.persist(new_event("hactl/event/bait", "master", {"p": payload.hex()}))
        await op.nc.publish(
            f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
            json.dumps({"seq": seq}).encode(),
            reply="hactl.cmd.ctl1",
        )
        await op.sync()
        for _ in range(40):
            if minion.rejects.counts.get("untrusted"):
                break
            await asyncio.sleep(0.05)
        assert minion.rejects.counts.get("untrusted") == 1
        assert ran == []
    finally:
        await minion.close()
        await op.close()
