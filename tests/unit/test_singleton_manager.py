"""The master's singleton leases (master/singletons/manager.py) over an in-memory KV with
compare-and-set and a hand-driven clock: who is told to hold, when a silent holder's lease is
expired, how a move and a release go, and that only a leader acknowledges."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from hactl.bus import Inbound
from hactl.master.singletons.manager import SingletonManager
from hactl.wire.envelope import Event
from hactl.wire.maint import Maintenance
from hactl.wire.singleton import RenewItem, SingletonSpec, encode_spec, expires_after, spec_key
from tests.support.memkv import MemKv

pytestmark = pytest.mark.unit

SPEC = SingletonSpec("sched", "sched", ("ctl1", "ctl2", "ctl3"), ("ctl1", "ctl2", "ctl3"))


class Trail:
    """What the manager publishes (its decision trail)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.rejects = SimpleNamespace(reject=lambda exc, subject: None)

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        self.events.append(event)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def manager(
    maint: list[Maintenance] | None = None,
) -> tuple[SingletonManager, MemKv, Clock, dict[str, bool], Trail]:
    kv, clock, lead, trail = MemKv(), Clock(), {"on": True}, Trail()
    kv.data[spec_key("sched")] = (encode_spec(SPEC), 1)
    kv.seq = 1

    async def leads() -> bool:
        return lead["on"]

    m = SingletonManager(
        trail,  # type: ignore[arg-type]  # publish and rejects are all it uses outside start()
        kv,
        lead=leads,
        maintenance=lambda: maint or [],
        vip_holders=dict,
        clock=clock,
    )
    return m, kv, clock, lead, trail


async def renew(m: SingletonManager, node: str, **item: Any) -> tuple[bool, Any]:
    leader, grants = await m.renew(node, [RenewItem("sched", **item)])
    return leader, grants.get("sched")


async def test_grant_to_the_preferred_renewing_node_and_acknowledge_only_it() -> None:
    """Nobody holds it: the first preferred node that renews gets it (token = the record's
    revision); the others are told who holds it."""
    m, kv, _, _, trail = manager()
    for n in ("ctl2", "ctl1", "ctl3"):
        await renew(m, n)
    await m.tick()
    _, g1 = await renew(m, "ctl1")
    _, g2 = await renew(m, "ctl2")
    assert g1.hold and g1.token == kv.data["singleton.sched"][1]
    assert not g2.hold and g2.reason == "held by ctl1"
    assert [e.data["kind"] for e in trail.events if e.tag.endswith("/done")] == ["grant"]


async def test_a_silent_holder_keeps_it_until_lease_and_margin_have_passed() -> None:
    """The holder stops renewing: the lease is not expired one tick before
    expires_after(spec) from its last acknowledged renewal, and is at that moment; then the
    next node gets it."""
    m, _, clock, _, _ = manager()
    for n in ("ctl1", "ctl2"):
        await renew(m, n)
    await m.tick()
    await renew(m, "ctl1")
    heard = clock.t
    while clock.t < heard + expires_after(SPEC) - 0.25:
        clock.t += 0.25
        await renew(m, "ctl2")
        await m.tick()
        assert m.states["sched"].holder == "ctl1"
    clock.t = heard + expires_after(SPEC) + 0.01
    await renew(m, "ctl2")
    await m.tick()  # expired (cleared)
    await m.tick()  # granted again
    assert m.states["sched"].holder == "ctl2"


async def test_not_leading_acknowledges_nothing_and_a_new_leader_waits_a_full_lease() -> None:
    """A master that does not lead answers leader=false; when it leads again it does not know
    when the holder last renewed elsewhere and expires it no sooner than a full lease later."""
    m, _, clock, lead, _ = manager()
    await renew(m, "ctl1")
    await m.tick()
    lead["on"] = False
    leader, grant = await renew(m, "ctl1")
    assert not leader and grant is None
    clock.t += 60
    lead["on"] = True
    await renew(m, "ctl2")
    await m.tick()
    assert m.states["sched"].holder == "ctl1"  # not expired: a full lease from now
    clock.t += expires_after(SPEC) - 0.5
    await renew(m, "ctl2")
    await m.tick()
    assert m.states["sched"].holder == "ctl1"
    clock.t += 1.0
    await renew(m, "ctl2")
    await m.tick()
    await m.tick()
    assert m.states["sched"].holder == "ctl2"


async def test_move_revokes_then_grants_after_the_release() -> None:
    """An operator's move: the holder is told hold=false; only its release (it stopped)
    clears the lease, and the target gets it at once."""
    m, _, _, _, _ = manager()
    for n in ("ctl1", "ctl2", "ctl3"):
        await renew(m, n)
    await m.tick()
    await m.move("sched", "ctl3")
    await m.tick()
    _, g = await renew(m, "ctl1", token=m.states["sched"].rev, running=True)
    assert not g.hold and g.reason.startswith("revoked")
    await m.tick()
    assert m.states["sched"].holder == "ctl1"  # not before it says it stopped
    _, g = await renew(m, "ctl1", release=True)
    assert g.reason == "released"
    await renew(m, "ctl3")
    await m.tick()
    assert m.states["sched"].holder == "ctl3"


async def test_move_to_a_node_that_cannot_take_it_is_refused() -> None:
    """A move to a node outside nodes, or one not renewing, is refused with the reason."""
    m, _, _, _, _ = manager()
    await renew(m, "ctl1")
    await m.tick()
    with pytest.raises(ValueError, match="not renewing"):
        await m.move("sched", "ctl2")
    with pytest.raises(ValueError, match="not among"):
        await m.move("sched", "ctl9")


async def test_failures_at_the_threshold_and_maintenance_revoke() -> None:
    """A holder reporting failures at the threshold is revoked; a node in maintenance is never
    granted it."""
    window = Maintenance("ctl1", "all", "kernel update")
    m, _, _, _, _ = manager([window])
    for n in ("ctl1", "ctl2"):
        await renew(m, n)
    await m.tick()
    assert m.states["sched"].holder == "ctl2"
    _, g = await renew(m, "ctl2", token=m.states["sched"].rev, running=True, failures=2)
    assert not g.hold and "threshold" in g.reason


async def test_a_kv_write_that_fails_grants_nothing() -> None:
    """No majority (KV writes fail): no grant, a failed event in the trail."""
    m, kv, _, _, trail = manager()
    await renew(m, "ctl1")
    kv.broken = True
    await m.tick()
    assert m.states["sched"].holder == ""
    assert any(e.tag.endswith("/failed") for e in trail.events)


async def test_a_server_delivery_onto_a_renewal_subject_is_refused_unread() -> None:
    """A stored "release" an operator has the server deliver onto hactl.lease.ctl1.renew (a
    direct get's reply subject: no identity inbox, stream headers) is refused unread; the
    holder keeps its lease. A real renewal (asked on an identity inbox) is answered."""
    from hactl.wire.singleton import encode_request

    m, _, _, _, _ = manager()
    await renew(m, "ctl1")
    await m.tick()
    forged = Inbound(
        subject="hactl.lease.ctl1.renew",
        data=encode_request([RenewItem("sched", release=True)]),
        reply="",
        headers={"Nats-Stream": "HACTL_EVENTS", "Nats-Sequence": "7"},
    )
    assert await m._on_renew(forged) is None
    assert m.states["sched"].holder == "ctl1" and m.counts["refused"] == 1
    real = dataclasses.replace(forged, reply="_HI.UKEY.x", headers=None)
    assert await m._on_renew(real) is not None
    assert m.states["sched"].holder == ""


async def test_a_leader_that_cannot_read_the_specs_answers_no_renewal() -> None:
    """A master that leads before it could read the singleton specs (JetStream electing after
    a restart) neither grants nor denies: it answers leader=false, so the holder's lease runs
    on instead of its copy being told "not a singleton" and stopped; once the specs are
    read, it answers as before."""
    m, kv, clock, _, _ = manager()
    await renew(m, "ctl1")
    await m.tick()
    assert (await renew(m, "ctl1"))[1].hold
    fresh, _, _, _, _ = manager()
    fresh.kv = kv  # the same bucket, a new master
    kv.broken = True
    leader, grant = await renew(fresh, "ctl1")
    assert not leader and grant is None
    await fresh.tick()  # no pass without the specs: nothing expired or granted
    kv.broken = False
    clock.t += 1.0
    fresh.clock = clock
    leader, grant = await renew(fresh, "ctl1")
    assert leader and grant is not None and grant.hold, grant
