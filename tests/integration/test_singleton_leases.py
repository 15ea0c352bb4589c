"""Singleton leases over a real nats-server with production permissions: hactl apply's spec
in KV, a minion renewing on its own subject and held by the master's answer, and every other
identity refused that subject (hactl/auth/perms.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hactl.auth.perms import SINGLETON_BUCKET
from hactl.bus import Bus, kv_bucket
from hactl.master.apply import publish_singletons
from hactl.master.singletons.manager import SingletonManager
from hactl.wire.singleton import (
    RenewItem,
    SingletonSpec,
    encode_request,
    renew_reply,
    renew_subject,
)
from tests.integration.conftest import NatsHandle
from tests.integration.test_permissions import _conn

pytestmark = pytest.mark.integration

SPEC = SingletonSpec("itest-sched", "itest-sched", ("ctl1", "ctl2"), ("ctl1",))


async def _renew(bus: Bus, node: str, **item: Any) -> tuple[bool, dict[str, object]]:
    msg = await bus.nc.request(
        renew_subject(node),
        encode_request([RenewItem(SPEC.name, **item)]),
        timeout=2,
    )
    leader, grants = renew_reply(msg.data)
    g = grants[SPEC.name]
    return leader, {"hold": g.hold, "token": g.token, "reason": g.reason}


async def test_a_minion_renews_its_own_lease_and_is_held(nats: NatsHandle) -> None:
    """apply writes the spec; the master answers ctl1's renewal on hactl.lease.ctl1.renew;
    after a pass ctl1 holds it with the record's revision as token; ctl2 is told who holds it."""
    master = await Bus.connect(nats.url, nats.auth("master"), name="itest-master")
    admin = await Bus.connect(nats.url, nats.auth("admin"), name="itest-admin")
    ctl1 = await Bus.connect(nats.url, nats.auth("ctl1"), name="itest-ctl1")
    ctl2 = await Bus.connect(nats.url, nats.auth("ctl2"), name="itest-ctl2")

    async def leads() -> bool:
        return True

    kv = await kv_bucket(master, SINGLETON_BUCKET, history=5)
    mgr = SingletonManager(master, kv, lead=leads, maintenance=list, vip_holders=dict)
    try:
        said = await publish_singletons(admin, {SPEC.name: SPEC}, whole_tree=False)
        assert said == [f"singleton {SPEC.name}: spec added"]
        await mgr.start()
        await master.sync()
        leader, g = await _renew(ctl1, "ctl1")
        assert leader and not g["hold"] and g["reason"] == "not granted yet"
        await _renew(ctl2, "ctl2")
        await mgr.tick()
        leader, g = await _renew(ctl1, "ctl1")
        entry = await kv.get(f"singleton.{SPEC.name}")
        assert g["hold"] and g["token"] == entry.revision
        _, g2 = await _renew(ctl2, "ctl2")
        assert not g2["hold"] and g2["reason"] == "held by ctl1"
    finally:
        await mgr.close()
        for b in (master, admin, ctl1, ctl2):
            await b.close()


async def test_nobody_but_the_node_renews_its_lease(nats: NatsHandle) -> None:
    """The server refuses ctl1 renewing as ctl2, and an operator or admin renewing at all:
    a lease can only be kept alive by the node that holds it."""
    conns = {n: await _conn(nats.url, nats.auth(n)) for n in ("ctl1", "operator", "admin")}
    try:
        assert await conns["ctl1"].pub_refused(renew_subject("ctl2"))
        assert await conns["operator"].pub_refused(renew_subject("ctl1"))
        assert await conns["admin"].pub_refused(renew_subject("ctl1"))
        # and a minion cannot listen to others' renewals (nor answer them)
        assert await conns["ctl1"].sub_refused("hactl.lease.*.renew")
    finally:
        for c in conns.values():
            await c.nc.close()
        await asyncio.sleep(0)
