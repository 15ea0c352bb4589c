"""The shipped rules and the damping, on the in-memory bus (no NATS, no daemons)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from hactl import yamlsrc
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.engine import Engine
from hactl.master.reactor.rules.rule import load_rules, parse_rules
from hactl.wire.envelope import Event, new_event
from hactl.wire.leases import BootstrapLease, encode_bootstrap
from tests.support.membus import MemBus, ok_runtime

RULES = load_rules(Path(__file__).resolve().parents[2] / "reactors", REGISTRY)
NODES = ("ctl1", "ctl2", "ctl3")


def beacon(
    node: str, name: str, items: dict[str, Any], changes: list[dict[str, Any]] | None = None
) -> Event:
    """A beacon event as a minion publishes it."""
    return new_event(
        f"hactl/beacon/{node}/{name}",
        node,
        {"items": items, "changes": changes or [], "resync": not changes},
    )


def galera(
    node: str, *, synced: bool, prev: bool | None = None, running: bool = True, primary: bool = True
) -> Event:
    """A galera beacon event; ``prev`` set -> a synced change."""
    item = {
        "running": running,
        "synced": synced,
        "cluster_status": "Primary" if primary else "non-Primary",
    }
    if not running:  # a stopped node reports its saved position (grastate.dat)
        item.update(uuid="75faf094-0000-11f1-aa8d-d6179edf788c", seqno=-1)
    changes = (
        [{"item": "local", "field": "synced", "value": synced, "prev": prev}]
        if prev is not None
        else []
    )
    return beacon(node, "galera", {"local": item}, changes)


def haproxy_items(servers: dict[str, list[str]]) -> dict[str, Any]:
    """backend -> servers, as the haproxy beacon reports them."""
    return {
        f"{be}/{s}": {"backend": be, "server": s, "status": "UP"}
        for be, ss in servers.items()
        for s in ss
    }


async def engine_with(bus: MemBus, rules: Any = RULES, **kw: Any) -> Engine:
    """An engine whose view knows three HAProxy nodes with galera/rabbitmq/api backends."""
    eng = Engine(rules, bus, **kw)
    for n in NODES:
        bus.minions[n] = ok_runtime
        await eng.handle(
            beacon(
                n,
                "haproxy",
                haproxy_items(
                    {"galera": list(NODES), "rabbitmq": list(NODES), "be_nova_api": list(NODES)}
                ),
            )
        )
        await eng.handle(galera(n, synced=True))  # a healthy cluster to start from
    return eng


def runtime_calls(bus: MemBus) -> list[tuple[str, str, str, str]]:
    """(node, verb, backend, server[/state]) of every haproxy.runtime request."""
    return [
        (t, a["verb"], a["backend"], a["server"] + ("/" + a["state"] if "state" in a else ""))
        for t, c, a in bus.requests
        if c == "haproxy.runtime"
    ]


async def test_galera_rules_ignore_resyncs_and_other_fields() -> None:
    """A resync or a cluster_size change of a synced node fires nothing."""
    bus = MemBus()
    eng = await engine_with(bus)
    await eng.handle(galera("ctl1", synced=True))
    ev = beacon(
        "ctl1",
        "galera",
        {"local": {"running": True, "synced": True, "cluster_status": "Primary"}},
        [{"item": "local", "field": "cluster_size", "value": 2, "prev": 3}],
    )
    await eng.handle(ev)
    await eng.idle()
    assert bus.audit() == [] and bus.requests == []


def position_minion(seqno: int, safe: bool = False) -> Any:
    """A stopped Galera node that bootstraps/starts on request."""

    def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        if cmd == "galera.position":
            return {
                "result": True,
                "running": False,
                "uuid": "u" * 8 + "-0000-0000-0000-" + "0" * 12,
                "seqno": seqno,
                "safe_to_bootstrap": safe,
                "source": "recover",
            }
        return {"result": True, "comment": "Synced"}

    return handler


async def test_all_galera_down_recovers_from_most_advanced_then_rejoins_one_by_one() -> None:
    """All three report down: after the debounce, bootstrap the highest seqno, then rejoin."""
    rules = [r for r in RULES if r.name == "galera-cluster-down"]
    rule = rules[0].__class__(
        **{**{f: getattr(rules[0], f) for f in rules[0].__slots__}, "debounce": 0.05}
    )
    bus = MemBus()
    eng = Engine([rule], bus)
    for n, s in zip(NODES, (13, 13, 10), strict=True):
        bus.minions[n] = position_minion(s)
    for n in NODES:
        await eng.handle(galera(n, synced=False, prev=True, running=False, primary=False))
    await eng.idle()
    cmds = [(t, c) for t, c, _ in bus.requests if c not in ("galera.position", "test.ping")]
    assert cmds == [
        ("ctl1", "galera.bootstrap"),
        ("ctl2", "galera.start"),
        ("ctl3", "galera.start"),
    ]
    assert [e.data["reason"] for e in bus.audit("suppressed")] == ["debounced", "debounced"]
    steps = [e.tag for e, _ in bus.published if e.tag.startswith("hactl/event/galera/")]
    assert steps[:3] == [
        "hactl/event/galera/positions",
        "hactl/event/galera/decision",
        "hactl/event/galera/bootstrap",
    ]
    assert len(bus.audit("done")) == 1


async def test_recover_refuses_when_a_member_is_unreachable() -> None:
    """One minion does not answer: failed with the planner's reason, nothing started."""
    bus = MemBus()
    eng = Engine([r for r in RULES if r.name == "galera-cluster-down"], bus)
    bus.minions["ctl1"] = position_minion(9)
    bus.minions["ctl2"] = position_minion(8)  # ctl3 has no minion
    for n in NODES:
        eng.view.set(n, "galera", {"local": {"running": False, "synced": False}})
    await eng._actions(
        eng.rules[0], galera("ctl1", synced=False, running=False), [("galera.recover_cluster", {})]
    )
    failed = bus.audit("failed")
    assert (
        len(failed) == 1
        and "ctl3" in failed[0].data["error"]
        and "unreachable" in failed[0].data["error"]
    )
    assert not [c for _, c, _ in bus.requests if c in ("galera.bootstrap", "galera.start")]


def fast(name: str, **changes: Any) -> Any:
    """A shipped rule with some fields changed (a short debounce for tests)."""
    r = next(r for r in RULES if r.name == name)
    return r.__class__(**{**{f: getattr(r, f) for f in r.__slots__}, **changes})


async def test_split_brain_alerts_only_when_it_persists() -> None:
    """A VIP held twice for a moment (a move) is cleared; held past the debounce: one alert."""
    bus = MemBus()
    eng = await engine_with(bus, rules=[fast("split-brain", debounce=0.05)])
    both = {"VI_INTERNAL": {"vips": ["10.0.0.100"], "state": "MASTER", "vip_here": True}}
    gone = {"VI_INTERNAL": {"vips": ["10.0.0.100"], "state": "BACKUP", "vip_here": False}}
    await eng.handle(beacon("ctl1", "vrrp", both))
    await eng.handle(beacon("ctl2", "vrrp", both))  # the new holder reports first ...
    await eng.handle(beacon("ctl1", "vrrp", gone))  # ... the old one lets go right after
    await eng.idle()
    assert not [e for e, _ in bus.published if e.tag == "hactl/event/alert/split-brain"]
    assert [e.data["reason"] for e in bus.audit("suppressed")] == ["cleared"]
    await eng.handle(beacon("ctl1", "vrrp", both))  # a real one: stays
    await eng.idle()
    alerts = [e for e, _ in bus.published if e.tag == "hactl/event/alert/split-brain"]
    assert len(alerts) == 1 and alerts[0].data["vips"] == ["10.0.0.100"]
    await eng.handle(
        beacon("ctl2", "vrrp", {"VI_INTERNAL": {**both["VI_INTERNAL"], "priority": 1}})
    )
    await eng.idle()
    assert [e.data["reason"] for e in bus.audit("suppressed")] == ["cleared", "cooldown"]


def rule(text: str) -> Any:
    """One rule from YAML text."""
    return parse_rules(yamlsrc.load(text, "test.yaml"), REGISTRY)


#: a site's own edge rules (the shipped HAProxy states belong to the reconciler now): the
#: engine's mechanics are tested with them
SITE_RULES = rule(
    """
- name: site-out
  on: hactl/beacon/*/galera
  when: event.changed.synced.to == false
  key: event.node
  do:
    - haproxy.set_state: {node: all, backend: galera, server: "{{ event.node }}", state: maint}
- name: site-back
  on: hactl/beacon/*/galera
  when: event.changed.synced.to == true
  key: event.node
  do:
    - haproxy.set_state: {node: all, backend: galera, server: "{{ event.node }}", state: ready}
"""
)


async def test_cooldown_and_max_per_suppress_with_reasons() -> None:
    """cooldown suppresses inside the window; max_per caps firings per window; both say why."""
    now = [0.0]
    bus = MemBus()
    rules = rule("""
- name: cool
  on: hactl/event/t/**
  cooldown: 10s
  do: [{event.fire: {tag: hactl/event/out/cool}}]
- name: capped
  on: hactl/event/t/**
  max_per: {count: 2, window: 60s}
  do: [{event.fire: {tag: hactl/event/out/capped}}]
""")
    eng = Engine(rules, bus, clock=lambda: now[0])
    for t in (0.0, 5.0, 11.0, 30.0):
        now[0] = t
        await eng.handle(new_event("hactl/event/t/x", "cli", {}))
    await eng.idle()
    fired = [e.data["rule"] for e in bus.audit("fired")]
    assert fired.count("cool") == 3  # 0, 11, 30 (5 is inside the cooldown)
    assert fired.count("capped") == 2  # 0 and 5; 11 and 30 are over the cap
    reasons = sorted((e.data["rule"], e.data["reason"]) for e in bus.audit("suppressed"))
    assert reasons == [("capped", "max_per"), ("capped", "max_per"), ("cool", "cooldown")]


async def test_debounce_fires_once_with_the_latest_event() -> None:
    """A burst inside the debounce window fires once, for the last event; the rest suppressed."""
    bus = MemBus()
    eng = Engine(
        rule("""
- name: quiet
  on: hactl/event/t/*
  debounce: 0.05
  do: [{event.fire: {tag: hactl/event/out/q, data: {n: "{{ event.data.n }}"}}}]
"""),
        bus,
    )
    for n in range(5):
        await eng.handle(new_event("hactl/event/t/x", "cli", {"n": n}))
    await eng.idle()
    out = [e for e, _ in bus.published if e.tag == "hactl/event/out/q"]
    assert len(out) == 1 and out[0].data["n"] == 4  # a lone {{ }} keeps the int type
    assert len(bus.audit("suppressed")) == 4


async def test_a_redelivered_event_does_not_restart_its_debounce() -> None:
    """The same event handled again while its debounce runs (JetStream redelivered it) is not
    news: it fires once, one debounce after the first delivery, and nothing is suppressed."""
    bus = MemBus()
    eng = Engine(
        rule("""
- name: quiet
  on: hactl/event/t/*
  debounce: 0.2
  do: [{event.fire: {tag: hactl/event/out/q, data: {}}}]
"""),
        bus,
    )
    ev = new_event("hactl/event/t/x", "cli", {})
    first = await eng.handle(ev)
    await asyncio.sleep(0.15)
    again = await eng.handle(ev)
    assert again == first  # the same waiting timer: the runtime acks when it ends
    await eng.idle()
    out = [e for e, _ in bus.published if e.tag == "hactl/event/out/q"]
    # a restart goes through the supersede path, which says "debounced": nothing was said
    assert len(out) == 1 and bus.audit("suppressed") == []


async def test_debounce_is_not_starved_by_events_that_keep_coming() -> None:
    """Matching events every half debounce, for ten debounces (resyncs of a fact that holds):
    it fires while they are still coming (bounded at 3 debounces), not only after they stop."""
    bus = MemBus()
    eng = Engine(
        rule("""
- name: settle
  on: hactl/event/t/*
  debounce: 0.1
  do: [{event.fire: {tag: hactl/event/out/s, data: {n: "{{ event.data.n }}"}}}]
"""),
        bus,
    )
    fired_at: list[int] = []
    for n in range(20):
        await eng.handle(new_event("hactl/event/t/x", "cli", {"n": n}))
        await asyncio.sleep(0.05)
        if not fired_at and any(e.tag == "hactl/event/out/s" for e, _ in bus.published):
            fired_at.append(n)
    await eng.idle()
    out = [e for e, _ in bus.published if e.tag == "hactl/event/out/s"]
    assert out and fired_at and fired_at[0] < 19, fired_at  # before the last event


LOCKED = """
- name: locked
  on: hactl/event/t/*
  lock: galera
  do: [{event.fire: {tag: hactl/event/out/l}}]
"""


async def test_lock_held_elsewhere_is_suppressed() -> None:
    """A lock another master holds past lock_wait: suppressed with the reason, actions not run."""
    bus = MemBus(leases={"lock.galera"})  # held elsewhere, and never released
    eng = Engine(rule(LOCKED), bus, lock_wait=0.1)
    await eng.handle(new_event("hactl/event/t/x", "cli", {}))
    await eng.idle()
    assert [e.data["reason"] for e in bus.audit("suppressed")] == ["lock"]
    assert not [e for e, _ in bus.published if e.tag == "hactl/event/out/l"]


async def test_lock_released_elsewhere_is_waited_for() -> None:
    """A lock another master releases soon: this run waits for it, then acts (nothing lost)."""
    bus = MemBus(leases={"lock.galera"})
    eng = Engine(rule(LOCKED), bus, lock_wait=5)
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, bus.leases.discard, "lock.galera")
    await eng.handle(new_event("hactl/event/t/x", "cli", {}))
    await eng.idle()
    assert bus.audit("suppressed") == []
    assert [e for e, _ in bus.published if e.tag == "hactl/event/out/l"]


async def test_observe_mode_reports_without_acting() -> None:
    """--observe: fired and done are published with what would happen; no command is sent."""
    bus = MemBus()
    eng = await engine_with(bus, rules=SITE_RULES[:1], observe=True)
    await eng.handle(galera("ctl2", synced=False, prev=True, primary=False))
    await eng.idle()
    assert bus.requests == []
    done = bus.audit("done")
    assert len(done) == 1 and done[0].data["results"][0]["observe"] is True
    assert bus.audit("fired")[0].data["observe"] is True


async def test_redelivered_event_is_stored_once() -> None:
    """The same event handled twice (a redelivery): every audit event has the same msg id."""
    bus = MemBus()
    eng = Engine(
        rule("- {name: r, on: hactl/event/t/*, do: [{event.fire: {tag: hactl/event/out/r}}]}"), bus
    )
    ev = new_event("hactl/event/t/x", "cli", {})
    await eng.handle(ev)
    await eng.handle(ev)
    await eng.idle()
    assert (
        len(bus.audit("done")) == 1
        and len([e for e, _ in bus.published if e.tag == "hactl/event/out/r"]) == 1
    )


async def test_a_failing_when_is_reported_not_raised() -> None:
    """A condition that errors publishes failed with the error; the engine keeps going."""
    bus = MemBus()
    eng = Engine(
        rule(
            "- {name: bad, on: hactl/event/t/*, when: 'event.data.n / 0',\n"
            "   do: [{event.fire: {tag: hactl/event/o/b}}]}"
        ),
        bus,
    )
    await eng.handle(new_event("hactl/event/t/x", "cli", {"n": 1}))
    error = bus.audit("failed")[0].data["error"]
    assert error.startswith("when: rule bad: 'event.data.n / 0'") and "ZeroDivision" in error


def test_rules_errors_name_file_line_and_rule(tmp_path: Path) -> None:
    """Unknown action, bad glob and unknown key are refused with file:line and the rule name."""
    from hactl.master.reactor.rules.rule import RuleError

    for text, expect, line in (
        (
            "- name: a\n  on: hactl/beacon/*/galera\n  do:\n    - shell: {cmd: ls}\n",
            "unknown action 'shell'",
            4,
        ),
        ("- name: b\n  on: hactl/beacon/**x\n  do: [{event.fire: {tag: x}}]\n", "on:", 2),
        (
            "- name: c\n  on: hactl/event/*\n  wen: true\n  do: [{event.fire: {tag: x}}]\n",
            "unknown key(s) wen",
            3,
        ),
        (
            "- name: d\n  on: hactl/event/*\n  do: [{haproxy.set_state: {backend: b}}]\n",
            "missing argument 'server'",
            3,
        ),
        (
            "- name: e\n  on: hactl/event/*\n  do:\n"
            "    - haproxy.set_state: {backend: b, server: s, state: drian}\n",
            "haproxy.set_state: state must be one of ready, drain, maint, got 'drian'",
            4,
        ),
        (
            "- name: f\n  on: hactl/event/*\n  do:\n"
            "    - haproxy.set_weight: {backend: b, server: s, weight: heavy}\n",
            "weight must be int, got str",
            4,
        ),
        (
            "- name: g\n  on: hactl/event/*\n  key: '{{ event.node }}'\n"
            "  do: [{event.fire: {tag: x}}]\n",
            "key: an expression, not a template",
            3,
        ),
    ):
        with pytest.raises(RuleError) as err:
            parse_rules(yamlsrc.load(text, "r.yaml"), REGISTRY)
        assert expect in str(err.value) and err.value.line == line and err.value.file == "r.yaml"


async def test_blank_nodes_are_not_a_crash() -> None:
    """Members that never ran (no grastate: a fresh install) do not trigger a recovery."""
    bus = MemBus()
    eng = Engine([fast("galera-cluster-down", debounce=0.01)], bus)
    for n in NODES:
        blank = {"local": {"running": False, "synced": False, "uuid": None, "grastate": False}}
        await eng.handle(
            beacon(
                n,
                "galera",
                blank,
                [{"item": "local", "field": "running", "value": False, "prev": None}],
            )
        )
    await eng.idle()
    assert bus.audit() == [] and bus.requests == []


async def test_one_crashed_node_rejoins_from_its_position() -> None:
    """mariadbd dies on ctl2 while ctl1/ctl3 are Primary: galera.start with ctl2's position."""
    bus = MemBus()
    eng = await engine_with(bus, rules=[fast("galera-node-rejoin", debounce=0.01)])
    bus.minions["ctl2"] = position_minion(42)
    down = galera("ctl2", synced=False, prev=True, running=False, primary=False)
    down.data["changes"].append({"item": "local", "field": "running", "value": False, "prev": True})
    await eng.handle(down)
    await eng.idle()
    starts = [(t, a) for t, c, a in bus.requests if c == "galera.start"]
    assert len(starts) == 1 and starts[0][0] == "ctl2" and starts[0][1]["seqno"] == 42


async def test_a_rendered_argument_outside_the_schema_fails_that_rule() -> None:
    """state: "{{ event.data.s }}" rendering 'drian' is refused when the rule fires (the load
    check cannot see it): a failed decision naming the action and the reason, no request."""
    bus = MemBus()
    eng = Engine(
        rule(
            "- {name: t, on: hactl/event/t/*, do: [{haproxy.set_state: {backend: b, server: s,"
            " state: '{{ event.data.s }}'}}]}"
        ),
        bus,
    )
    await eng.handle(new_event("hactl/event/t/x", "cli", {"s": "drian"}))
    await eng.idle()
    error = bus.audit("failed")[0].data["error"]
    assert "haproxy.set_state: state must be one of ready, drain, maint" in error
    assert bus.requests == []


async def test_an_older_report_is_not_folded_in_and_its_rule_is_stale() -> None:
    """A redelivered report stored before the one the view holds (a restarted master) changes
    nothing: the view keeps the newer fact, and the rule it would fire is suppressed, stale."""
    bus = MemBus()
    eng = await engine_with(bus, rules=SITE_RULES)
    bus.requests.clear()
    now = time.time()  # the healthy start was stored "now" (event time)
    await eng.handle(galera("ctl2", synced=True, prev=False), stored=now + 20)
    await eng.idle()
    bus.requests.clear()
    await eng.handle(galera("ctl2", synced=False, prev=True, primary=False), stored=now + 10)
    await eng.idle()
    assert bus.requests == []
    assert eng.view.nodes["ctl2"]["galera"]["local"]["synced"] is True
    stale = bus.audit("suppressed")
    assert [(e.data["rule"], e.data["reason"]) for e in stale] == [("site-out", "stale")]


async def test_a_lost_verdict_about_a_minion_heard_since_changes_nothing() -> None:
    """hactl/minion/ctl2/lost about a silence before its last heartbeat: not lost."""
    bus = MemBus()
    eng = await engine_with(bus)
    await eng.handle(new_event("hactl/minion/ctl2/heartbeat", "ctl2", {}), stored=500.0)
    await eng.handle(new_event("hactl/minion/ctl2/lost", "master", {"last_seen": 400.0}))
    assert not eng.view.nodes["ctl2"]["minion"].get("lost")
    await eng.handle(new_event("hactl/minion/ctl2/lost", "master", {"last_seen": 500.0}))
    assert eng.view.nodes["ctl2"]["minion"]["lost"] is True


async def test_an_action_whose_fact_changed_while_it_waited_is_dropped() -> None:
    """site-out, given a lock, waits on it; ctl2 is Synced again before it gets it: the out is
    dropped (suppressed, stale, naming the fact); the back runs."""
    bus = MemBus()
    locked = [dataclasses.replace(r, lock="galera") for r in SITE_RULES]
    eng = await engine_with(bus, rules=locked)
    bus.requests.clear()
    bus.leases.add("lock.galera")  # another master holds it
    await eng.handle(galera("ctl2", synced=False, prev=True, primary=False))
    await eng.handle(galera("ctl2", synced=True, prev=False))
    await asyncio.sleep(0.05)
    bus.leases.discard("lock.galera")
    await eng.idle()
    dropped = bus.audit("suppressed")
    assert [(e.data["rule"], e.data["reason"]) for e in dropped] == [("site-out", "stale")]
    assert "synced is now True" in dropped[0].data["detail"]
    assert {a["state"] for _, c, a in bus.requests if c == "haproxy.runtime"} == {"ready"}


async def test_an_older_report_whose_trigger_still_holds_is_acted_on() -> None:
    """A redelivered older report whose tested change (synced -> true) still holds in the view
    fires its rule, though another field (cluster_size) changed since: only a rule's trigger
    fields make an action stale (exactly once across a master's death needs this)."""
    bus = MemBus()
    eng = await engine_with(bus, rules=SITE_RULES)
    now = time.time()
    newer = galera("ctl2", synced=True)
    newer.data["items"]["local"]["cluster_size"] = 2
    await eng.handle(newer, stored=now + 20)
    old = galera("ctl2", synced=True, prev=False)
    old.data["changes"].append({"item": "local", "field": "cluster_size", "value": 3, "prev": 2})
    await eng.handle(old, stored=now + 10)
    await eng.idle()
    assert [e.data["rule"] for e in bus.audit("done")] == ["site-back"]
    assert eng.view.nodes["ctl2"]["galera"]["local"]["cluster_size"] == 2  # not folded in


def _failing(cmd_fails: str, seqno: int) -> Any:
    """A stopped Galera node whose ``cmd_fails`` command fails."""
    ok = position_minion(seqno)

    def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        if cmd == cmd_fails:
            return {"result": False, "comment": f"{cmd} failed"}
        return ok(cmd, args)  # type: ignore[no-any-return]  # the helper's own handler

    return handler


async def test_bootstrap_lease_is_given_back_after_the_bootstrap_but_kept_if_it_failed() -> None:
    """A rejoin that fails after a good bootstrap: the epoch's lease is released (a Primary
    exists; a second crash at the same position must be recoverable); a failed bootstrap
    keeps it (mariadbd may still come up: no second bootstrap of that epoch before its TTL)."""
    for failing, held in (("galera.start", False), ("galera.bootstrap", True)):
        bus = MemBus()
        eng = Engine([r for r in RULES if r.name == "galera-cluster-down"], bus)
        bus.minions["ctl1"] = _failing(failing, 13)
        bus.minions["ctl2"] = _failing(failing, 12)
        bus.minions["ctl3"] = _failing(failing, 10)
        await _recover_all_down(eng)
        assert len(bus.audit("failed")) == 1
        taken = [n for n in bus.lease_values if n.startswith("galera-bootstrap.")]
        assert len(taken) == 1 and (taken[0] in bus.leases) is held, (failing, bus.leases)


async def _recover_all_down(eng: Engine) -> None:
    """Every Galera node down in the view; run galera-cluster-down's recovery once."""
    for n in NODES:
        eng.view.set(n, "galera", {"local": {"running": False, "synced": False}})
    await eng._actions(
        eng.rules[0], galera("ctl1", synced=False, running=False), [("galera.recover_cluster", {})]
    )


def _with_uuid(handler: Any, uuid: str) -> Any:
    """A position minion reporting a real cluster uuid (a lease record is checked strictly)."""

    def answer(cmd: str, args: dict[str, Any]) -> Any:
        out = handler(cmd, args)
        return {**out, "uuid": uuid} if cmd == "galera.position" else out

    return answer


async def test_a_recovery_whose_master_died_after_taking_the_lease_is_resumed() -> None:
    """The epoch's lease names ctl1 (a master took it and died before its bootstrap); nothing
    runs: a new master resumes the same plan -- bootstrap ctl1, rejoin the others -- and a
    lease naming another node is refused."""
    for named, resumed in (("ctl1", True), ("ctl2", False)):
        bus = MemBus()
        eng = Engine([r for r in RULES if r.name == "galera-cluster-down"], bus)
        uuid = "75faf094-0000-11f1-aa8d-d6179edf788c"
        for n, s in zip(NODES, (13, 12, 10), strict=True):
            bus.minions[n] = _with_uuid(position_minion(s), uuid)
        await bus.lease(
            f"galera-bootstrap.{uuid}.13",
            encode_bootstrap(BootstrapLease(named, uuid, 13, "master", 1.0)),
        )
        await _recover_all_down(eng)
        boots = [t for t, c, _ in bus.requests if c == "galera.bootstrap"]
        assert boots == (["ctl1"] if resumed else []), named
        assert len(bus.audit("done" if resumed else "failed")) == 1


async def test_cluster_facts_are_computed_only_when_a_rule_reads_them() -> None:
    """A rule whose condition tests only the event never makes the engine walk the view
    (1,000 nodes made every such event pay for it); a rule that reads ``cluster`` gets the
    same facts as before, computed once per change of the view; a fact that cannot be
    computed fails only the rule that reads it."""
    rules = parse_rules(
        yamlsrc.load(
            """
- name: event-only
  on: hactl/beacon/*/supervisor
  when: event.changed.given_up.to == true
  do: [{event.fire: {tag: hactl/event/a/x, data: {}}}]
- name: reads-cluster
  on: hactl/beacon/*/galera
  when: event.node in cluster.galera.members
  do: [{event.fire: {tag: hactl/event/b/x, data: {}}}]
""",
            "inline.yaml",
        ),
        REGISTRY,
    )
    bus = MemBus()
    eng = Engine(rules, bus)
    walks: list[int] = []
    real = eng.view.facts

    def counted() -> dict[str, Any]:
        walks.append(1)
        return real()

    eng.view.facts = counted  # type: ignore[method-assign]  # counts, then calls it
    flap = {"haproxy": {"running": False, "given_up": True}}
    change = [{"item": "haproxy", "field": "given_up", "value": True, "prev": False}]
    await eng.handle(beacon("ctl1", "supervisor", flap, change))
    assert walks == [] and [e.tag for e, _ in bus.published if "event/a" in e.tag]
    await eng.handle(galera("ctl2", synced=True))
    assert walks == [1] and [e.tag for e, _ in bus.published if "event/b" in e.tag]

    def broken() -> dict[str, Any]:
        raise ValueError("a fact that cannot be computed")

    eng.view.facts = broken  # type: ignore[method-assign]  # the failure path
    eng.invalidate()
    await eng.handle(beacon("ctl3", "supervisor", flap, change))
    await eng.handle(galera("ctl3", synced=False, prev=True))
    failed = [e for e, _ in bus.published if e.tag.endswith("reads-cluster/failed")]
    assert len(failed) == 1 and "a fact that cannot be computed" in str(failed[0].data)
    assert len([e for e, _ in bus.published if "event/a" in e.tag]) == 2
