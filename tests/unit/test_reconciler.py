"""The HAProxy reconciler on the in-memory bus: desired state from facts, only differences sent."""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.master.reactor.convergence.desired import desired
from hactl.master.reactor.convergence.reconciler import ReconcileOptions, Reconciler
from hactl.master.reactor.view.cluster import ClusterView
from hactl.wire.commands import error_reply
from hactl.wire.envelope import Event, new_event
from hactl.wire.maint import Maintenance
from tests.support.membus import MemBus, ok_runtime
from tests.support.memkv import MemKv

NODES = ("ctl1", "ctl2", "ctl3")
BACKENDS = ("galera", "rabbitmq", "be_nova_api")


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ev(node: str, kind: str, items: dict[str, Any]) -> Event:
    """A beacon event."""
    return new_event(f"hactl/beacon/{node}/{kind}", node, {"items": items, "changes": []})


def healthy_view(admin: str = "ready") -> ClusterView:
    """Three heard nodes, each HAProxy holding every node in every backend, all healthy."""
    view = ClusterView()
    for n in NODES:
        view.update(new_event(f"hactl/minion/{n}/heartbeat", n, {}), 1.0)
        servers = {
            f"{be}/{s}": {"backend": be, "server": s, "status": "UP", "admin": admin}
            for be in BACKENDS
            for s in NODES
        }
        view.update(ev(n, "haproxy", {**servers, "_haproxy": {"running": True, "error": ""}}))
        view.update(ev(n, "galera", {"local": {"running": True, "synced": True}}))
        view.update(ev(n, "rabbitmq", {"local": {"running": True, "alarms": []}}))
        view.update(vrrp(n, "BACKUP", 100))
    return view


def vrrp(node: str, state: str, prio: int) -> Event:
    """VI_INTERNAL of ``node``."""
    item = {"vips": ["v"], "state": state, "priority": prio, "vip_here": state == "MASTER"}
    return ev(node, "vrrp", {"VI_INTERNAL": item})


def admin(view: ClusterView, haproxy: str, backend: str, server: str, state: str) -> None:
    """What the HAProxy's beacon reports after a correction (or an operator's hand)."""
    items = dict(view.nodes[haproxy]["haproxy"])
    items[f"{backend}/{server}"] = {**items[f"{backend}/{server}"], "admin": state}
    view.update(ev(haproxy, "haproxy", items))


def reconciler(
    view: ClusterView, bus: MemBus, **kw: Any
) -> tuple[Reconciler, list[Maintenance], Clock]:
    """A leading reconciler over ``view`` with no settle time unless asked."""
    for n in NODES:
        bus.minions[n] = ok_runtime
    windows: list[Maintenance] = []
    clock = Clock()
    opts = ReconcileOptions(**{"settle_back": 0.0, **kw.pop("opts", {})})
    rec = Reconciler(
        bus,
        view,
        kw.pop("locks", MemKv()),
        maintenance=lambda: windows,
        trust=kw.pop("trust", lambda: ""),
        options=opts,
        clock=clock,
        **kw,
    )
    return rec, windows, clock


def sent(bus: MemBus) -> list[tuple[str, str, str, str]]:
    """(haproxy, verb, backend, server[/state]) of every runtime request, sorted."""
    return sorted(
        (t, a["verb"], a["backend"], a["server"] + ("/" + a["state"] if "state" in a else ""))
        for t, c, a in bus.requests
        if c == "haproxy.runtime"
    )


async def once(rec: Reconciler) -> list[dict[str, Any]]:
    """Lead, then one pass."""
    assert await rec.lead()
    return await rec.once()


async def test_converged_cluster_sends_nothing() -> None:
    """Every server already in its desired state: a pass sends nothing and audits nothing."""
    bus = MemBus()
    rec, _, _ = reconciler(healthy_view(), bus)
    assert await once(rec) == [] and bus.requests == [] and bus.audit() == []


async def test_desynced_galera_node_out_with_sessions_cut_then_back() -> None:
    """ctl2 not Synced: maint + shutdown sessions on all 3 HAProxies, each audited with the
    fact; Synced again: ready, after the settle time and only then."""
    view, bus = healthy_view(), MemBus()
    rec, _, clock = reconciler(view, bus, opts={"settle_back": 2.0})
    view.update(ev("ctl2", "galera", {"local": {"running": True, "synced": False}}))
    await once(rec)
    assert sent(bus) == sorted(
        [(h, "set_state", "galera", "ctl2/maint") for h in NODES]
        + [(h, "shutdown_sessions", "galera", "ctl2") for h in NODES]
    )
    done = bus.audit("done")
    assert len(done) == 3 and all("ctl2: Galera not Synced" in e.data["fact"] for e in done)
    for h in NODES:
        admin(view, h, "galera", "ctl2", "maint")
    bus.requests.clear()
    view.update(ev("ctl2", "galera", {"local": {"running": True, "synced": True}}))
    await once(rec)
    assert bus.requests == []  # facts must hold for settle_back first
    clock.t += 2.5
    await once(rec)
    assert sent(bus) == [(h, "set_state", "galera", "ctl2/ready") for h in NODES]


async def test_a_crossed_out_and_back_leaves_no_residue() -> None:
    """Whatever order the facts came in, the pass converges on today's facts: a server left in
    maint by anyone while its node is Synced is made ready (the residue the edge rules left)."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    admin(view, "ctl3", "galera", "ctl2", "maint")
    admin(view, "ctl1", "rabbitmq", "ctl2", "maint")
    admin(view, "ctl1", "be_nova_api", "ctl1", "drain")
    await once(rec)
    assert sent(bus) == [
        ("ctl1", "set_state", "be_nova_api", "ctl1/ready"),
        ("ctl1", "set_state", "rabbitmq", "ctl2/ready"),
        ("ctl3", "set_state", "galera", "ctl2/ready"),
    ]


async def test_broker_down_is_maint_an_alarm_is_drain() -> None:
    """A broker that does not answer: maint with its sessions cut; a memory alarm: drain of
    that broker alone, though every broker's report lists the cluster's alarms."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    view.update(ev("ctl3", "rabbitmq", {"local": {"running": False, "detail": "nodedown"}}))
    for n in ("ctl1", "ctl2"):
        local = {"node": f"rabbit@{n}", "running": True, "alarms": ["rabbit@ctl2:mem_alarm"]}
        view.update(ev(n, "rabbitmq", {"local": local}))
    await once(rec)
    calls = sent(bus)
    assert [c for c in calls if c[3] == "ctl3/maint"] == [
        (h, "set_state", "rabbitmq", "ctl3/maint") for h in NODES
    ]
    assert len([c for c in calls if c[1] == "shutdown_sessions"]) == 3
    assert [c for c in calls if c[3] == "ctl2/drain"] == [
        (h, "set_state", "rabbitmq", "ctl2/drain") for h in NODES
    ]
    assert not [c for c in calls if c[3] == "ctl1/drain"], calls  # ctl1 only lists ctl2's


async def test_a_broker_on_the_minority_side_of_a_partition_is_taken_out() -> None:
    """ctl3's broker answers but reports itself cut from both others (a minority of its
    cluster): maint with sessions cut; the majority side (ctl1, ctl2 see ctl3 gone) stays in."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    members = [f"rabbit@{n}" for n in NODES]
    for n, cut in (("ctl3", ["ctl1", "ctl2"]), ("ctl1", ["ctl3"]), ("ctl2", ["ctl3"])):
        local = {
            "node": f"rabbit@{n}",
            "running": True,
            "alarms": [],
            "members": members,
            "partitions": [f"rabbit@{n}|rabbit@{c}" for c in cut],
        }
        view.update(ev(n, "rabbitmq", {"local": local}))
    await once(rec)
    calls = sent(bus)
    assert [c for c in calls if c[1] == "set_state"] == [
        (h, "set_state", "rabbitmq", "ctl3/maint") for h in NODES
    ]
    facts = {e.data["fact"] for e in bus.audit("done")}
    assert facts == {"ctl3: broker in a minority partition (cut from rabbit@ctl1,rabbit@ctl2)"}


async def test_unhealthy_keepalived_drains_its_api_servers_until_healthy() -> None:
    """ctl1 BACKUP at a reduced priority (its HAProxy check failed): its API servers drained on
    every running HAProxy; galera and rabbitmq follow their own facts; priority back: ready."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    view.update(vrrp("ctl1", "MASTER", 150))
    view.update(vrrp("ctl1", "BACKUP", 40))
    await once(rec)
    assert sent(bus) == [(h, "set_state", "be_nova_api", "ctl1/drain") for h in NODES]
    for h in NODES:
        admin(view, h, "be_nova_api", "ctl1", "drain")
    bus.requests.clear()
    view.update(vrrp("ctl1", "BACKUP", 150))
    await once(rec)
    assert sent(bus) == [(h, "set_state", "be_nova_api", "ctl1/ready") for h in NODES]


async def test_each_correction_names_the_event_that_changed_its_fact() -> None:
    """The drains after ctl1's priority drop name that vrrp event (``hactl why`` follows it,
    with the time since it); a galera correction names the galera report, not the vrrp one."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    view.update(vrrp("ctl1", "MASTER", 150))
    drop = vrrp("ctl1", "BACKUP", 40)
    view.update(drop)
    desync = ev("ctl2", "galera", {"local": {"running": True, "synced": False}})
    view.update(desync)
    await once(rec)
    done = {e.data["key"]: e.data for e in bus.audit("done")}
    assert {k for k, d in done.items() if d["event_id"] == drop.id} == {
        f"{h}:be_nova_api/ctl1" for h in NODES
    }
    assert {k for k, d in done.items() if d["event_id"] == desync.id} == {
        f"{h}:galera/ctl2" for h in NODES
    }
    assert all(d["event_tag"] == drop.tag for d in done.values() if d["event_id"] == drop.id)
    assert all(d["event_ts"] == drop.ts for d in done.values() if d["event_id"] == drop.id)


async def test_silence_takes_nothing_out() -> None:
    """A lost minion's last facts are not evidence: its servers are left ready (HAProxy's own
    checks decide), and a stopped HAProxy or a lost minion's HAProxy gets no command."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    view.update(ev("ctl2", "galera", {"local": {"running": True, "synced": False}}))
    view.update(new_event("hactl/minion/ctl2/lost", "master", {"last_seen": 1.0}))
    items = {**view.nodes["ctl3"]["haproxy"], "_haproxy": {"running": False, "error": "x"}}
    view.update(ev("ctl3", "haproxy", items))
    await once(rec)
    assert bus.requests == []
    wants = {w.key: w for w in rec.plan()}
    assert wants["ctl1:galera/ctl2"].state == "ready"
    assert wants["ctl2:galera/ctl1"].held.startswith("not_heard")
    assert wants["ctl3:galera/ctl1"].held.startswith("not_running")


async def test_an_untrusting_master_puts_back_but_takes_nothing_out() -> None:
    """While the master cannot trust what it hears, outs are held (suppressed, untrusted, once);
    a put-back still goes."""
    view, bus = healthy_view(), MemBus()
    why = "every minion fell silent at once"
    rec, _, _ = reconciler(view, bus, trust=lambda: why)
    view.update(ev("ctl2", "galera", {"local": {"running": True, "synced": False}}))
    admin(view, "ctl1", "rabbitmq", "ctl3", "maint")
    await once(rec)
    await once(rec)
    assert sent(bus) == [("ctl1", "set_state", "rabbitmq", "ctl3/ready")]
    held = bus.audit("suppressed")
    assert len(held) == 3 and {e.data["reason"] for e in held} == {"untrusted"}
    assert held[0].data["detail"] == why


async def test_maintenance_is_left_alone_and_said_once() -> None:
    """ctl2's galera under maintenance: its server is left as it is everywhere (suppressed,
    reason maintenance, once); an HAProxy under maintenance gets no command at all."""
    view, bus = healthy_view(), MemBus()
    rec, windows, _ = reconciler(view, bus)
    windows.append(Maintenance("ctl2", "galera", "disk swap"))
    windows.append(Maintenance("ctl3", "haproxy", "upgrade"))
    view.update(ev("ctl2", "galera", {"local": {"running": False, "synced": False}}))
    admin(view, "ctl3", "rabbitmq", "ctl1", "maint")
    await once(rec)
    await once(rec)
    assert bus.requests == []
    reasons = sorted((e.data["key"], e.data["reason"]) for e in bus.audit("suppressed"))
    assert reasons == [
        ("ctl1:galera/ctl2", "maintenance"),
        ("ctl2:galera/ctl2", "maintenance"),
        ("ctl3:galera/ctl2", "maintenance"),
        ("ctl3:rabbitmq/ctl1", "maintenance"),
    ]


async def test_only_the_leader_corrects_and_a_master_that_cannot_write_stops() -> None:
    """Two masters: the one holding the leader key corrects, the other does not; a leader
    whose writes fail stops within its renewal; the other takes over once the key is free."""
    view, bus = healthy_view(), MemBus()
    locks = MemKv()
    a, _, clock_a = reconciler(view, bus, locks=locks)
    b, _, clock_b = reconciler(view, bus, locks=locks)
    assert await a.lead() and not await b.lead()
    locks.broken = True
    clock_a.t += 6.0  # past a third of the TTL: must renew, cannot
    assert not await a.lead()
    locks.broken = False
    assert not await b.lead()  # a's key stands until the bucket's TTL removes it
    locks.data.clear()  # the TTL
    clock_b.t += 6.0
    assert await b.lead() and not await a.lead()
    await b.resign()  # a clean stop frees it at once
    assert await a.lead()


async def test_flapping_server_is_held_and_failures_back_off() -> None:
    """A server whose correction never shows is retried after `retry`, backing off; past
    max_per_minute corrections it is held as flapping."""
    view, bus = healthy_view(), MemBus()
    rec, _, clock = reconciler(view, bus, opts={"retry": 1.0, "max_per_minute": 3})
    admin(view, "ctl1", "galera", "ctl3", "maint")  # never changes: HAProxy ignores us
    for _ in range(6):
        await once(rec)
        clock.t += 1.1
    assert len(bus.requests) == 3
    assert [e.data["reason"] for e in bus.audit("suppressed")] == ["flapping"]


async def test_desired_state_of_an_api_backend_keeps_one_ready_server() -> None:
    """keepalived unhealthy on every node (a network problem, not three bad services): no API
    backend is drained empty."""
    view = healthy_view()
    for n in NODES:
        view.update(vrrp(n, "BACKUP", 150))
        view.update(vrrp(n, "FAULT", 150))
    wants = desired(view.nodes, view.facts()["vrrp_health"])
    api = [w for w in wants if w.backend == "be_nova_api"]
    assert api and all(w.held.startswith("last_ready") for w in api)


async def test_observe_reports_corrections_without_sending() -> None:
    """--observe: the correction is audited as it would be sent; nothing is sent."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus, observe=True)
    admin(view, "ctl1", "galera", "ctl3", "drain")
    await once(rec)
    assert bus.requests == []
    assert bus.audit("done")[0].data["would"] == [
        {"verb": "set_state", "backend": "galera", "server": "ctl3", "state": "ready"}
    ]


def test_run_loop_is_poked_by_changes() -> None:
    """The loop runs a pass soon after a poke (not only every interval)."""

    async def go() -> int:
        view, bus = healthy_view(), MemBus()
        rec, _, _ = reconciler(view, bus, opts={"interval": 60.0})
        task = asyncio.create_task(rec.run())
        admin(view, "ctl1", "galera", "ctl3", "maint")
        rec.poke()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if bus.requests:
                break
        task.cancel()
        return len(bus.requests)

    assert asyncio.run(go()) == 1


async def test_a_renewal_whose_acknowledgement_is_lost_keeps_the_lead() -> None:
    """A leader-key renewal that landed but whose acknowledgement was lost (a NATS server
    killed mid-write) does not cost the lead: the key still holds this master's value, so its
    revision is adopted; another master's key is not."""
    view, bus = healthy_view(), MemBus()
    locks = MemKv()
    a, _, clock_a = reconciler(view, bus, locks=locks)
    b, _, clock_b = reconciler(view, bus, locks=locks)
    assert await a.lead()
    locks.lose_ack = True
    clock_a.t += 3.0  # renews, the ack is lost
    assert await a.lead()
    locks.lose_ack = False
    clock_a.t += 3.0
    assert await a.lead(), "the adopted revision renews normally"
    clock_b.t += 30.0
    assert not await b.lead()


async def test_a_dead_haproxy_costs_one_failed_call_not_one_per_server() -> None:
    """ctl2's minion and HAProxy both out of reach of its admin socket before its beacon
    says so: a pass sends one correction there (failed, audited), defers the rest without
    counting them as flapping, and sends them once the socket answers again."""
    view, bus = healthy_view(), MemBus()
    rec, _, clock = reconciler(view, bus, opts={"retry": 1.0})
    bus.minions["ctl2"] = lambda cmd, args: error_reply(
        "j", "OSError", "admin socket connection refused"
    )
    for n in NODES:  # three servers to take out on each HAProxy
        view.update(ev(n, "galera", {"local": {"running": True, "synced": n == "ctl1"}}))
    view.update(ev("ctl1", "galera", {"local": {"running": True, "synced": True}}))
    await once(rec)
    to_ctl2 = [r for r in bus.requests if r[0] == "ctl2"]
    assert len(to_ctl2) == 1 and len(bus.audit("failed")) == 1
    assert {
        (t, a["server"]) for t, _, a in bus.requests if t != "ctl2" and a["verb"] == "set_state"
    } == {(h, s) for h in ("ctl1", "ctl3") for s in ("ctl2", "ctl3")}
    bus.minions["ctl2"] = ok_runtime
    clock.t += 1.1
    await once(rec)
    sent_ctl2 = {
        a["server"] for t, _, a in bus.requests if t == "ctl2" and a["verb"] == "set_state"
    }
    assert sent_ctl2 == {"ctl2", "ctl3"}
    assert bus.audit("suppressed") == []  # nothing held as flapping


def test_a_brokers_own_alarms_come_from_its_health_check_first() -> None:
    """own_alarms: the local-alarms check when the beacon has it (current), else the
    cluster list's entries that name the broker; another broker's alarm is never its own."""
    from hactl.master.reactor.convergence.desired import own_alarms

    stale = {"node": "rabbit@ctl2", "alarms": ["rabbit@ctl2:mem_alarm", "rabbit@ctl3:mem_alarm"]}
    assert own_alarms(stale) == ["rabbit@ctl2:mem_alarm"]
    assert own_alarms({**stale, "local_alarms": []}) == []  # cleared: the list lags
    assert own_alarms({**stale, "local_alarms": ["rabbit@ctl2:memory"]}) == ["rabbit@ctl2:memory"]
    assert own_alarms({"node": "rabbit@ctl1", "alarms": ["rabbit@ctl3:disk_free_alarm"]}) == []
