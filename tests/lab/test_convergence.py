"""Convergence: partitions, heals and a master restart leave no residue (issue 13).

Two nodes in turn (the master's NATS server's, then another) are cut off silently (its link
off the bridge: NATS, VRRP, Galera, RabbitMQ traffic all stop) past the loss verdict, then
healed; then the residue the old edge rules left in the lab (rabbitmq/ctl2 in MAINT on every
HAProxy, ctl1 drained in every API backend of ctl2) is made by hand and the master restarted.
The reconciler must bring every server on every HAProxy to its desired state, and the trail
must show no stale action.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from hactl.lab import bus as lab_bus
from hactl.lab import lab as L
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.rule import load_rules
from hactl.wire.envelope import Event
from tests.lab.conftest import report
from tests.lab.helpers import (
    admin_states,
    haproxy_cmd,
    jetstream_settled,
    master_server,
    recent_decisions,
    server_status,
    stored_events,
    wait_until,
)

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)

MANAGED = ("galera/", "rabbitmq/", "be_")


def _not_desired(lab: L.Lab) -> list[str]:
    """What differs from the healthy cluster's desired state: every managed server ready (admin)
    on every HAProxy, and the Galera and RabbitMQ servers UP (checks and agent agree)."""
    bad = []
    for h in lab.net.nodes:
        admin, status = admin_states(lab, h), server_status(lab, h)
        if not admin:
            bad.append(f"{h}: HAProxy does not answer")
        for key, state in sorted(admin.items()):
            if key.startswith(MANAGED) and state != "ready":
                bad.append(f"{h}:{key}={state}")
        for key, st in sorted(status.items()):
            if key.startswith(("galera/", "rabbitmq/")) and st != "UP":
                bad.append(f"{h}:{key} {st}")
    return bad


def _stale(done: Event, started: float, beacons: list[Event], fields: frozenset[str]) -> str:
    """Why the action a rule ran was stale ('' if it was not): the last report of the same
    node and beacon before the run ``started`` no longer had the value its trigger changed
    in one of the rule's trigger ``fields``."""
    trigger = next((b for b in beacons if b.id == done.data.get("event_id")), None)
    if trigger is None:
        return ""  # not a beacon trigger (a minion event, a follow-up)
    before = [b for b in beacons if b.tag == trigger.tag and b.ts <= started]
    latest = max(before, key=lambda b: b.ts, default=trigger)
    for ch in trigger.data.get("changes") or []:
        if ch.get("field") not in fields:
            continue
        now = (latest.data.get("items") or {}).get(ch.get("item"), {}).get(ch.get("field"))
        if now != ch.get("value"):
            return f"{done.tag} on {trigger.tag}: {ch.get('field')} was {now!r} when it ran"
    return ""


def _converge(lab: L.Lab, timeout: float, what: str) -> float:
    try:
        return wait_until(lambda: not _not_desired(lab), timeout, what, step=0.2)
    except AssertionError:
        raise AssertionError(
            f"{what}: still {_not_desired(lab)[:12]}\n{recent_decisions(lab, '90s')}"
        ) from None


def test_partitions_heals_and_master_restart_converge_without_residue(lab: L.Lab) -> None:
    """Two nodes cut off for 14 s each (the master's own NATS server's first) and healed:
    the cluster converges; the master stopped, residue made by hand, the master started: every
    server on every HAProxy in its desired state within 30 s; no lost verdict about a node
    that was not cut, no stale action run, nothing taken out after the restart."""
    _converge(lab, 90, "the healthy start")
    first = master_server(lab)
    # two cuts: the master's own NATS server's node, then one other (the third node would
    # repeat the second; benchmarks/ repeats faults, CI runs each once)
    order = [first, next(n for n in lab.net.nodes if n != first)]
    since = datetime.now(UTC)
    cut_at: dict[str, tuple[datetime, datetime]] = {}
    healed_s = {}
    for node in order:
        t_cut = datetime.now(UTC)
        lab_bus.set_link(lab, node, attached=False)
        try:
            time.sleep(14)  # past lost_after (10 s in the lab)
        finally:
            lab_bus.set_link(lab, node, attached=True)
        t_heal = time.monotonic()
        cut_at[node] = (t_cut, datetime.now(UTC))
        healed_s[node] = _converge(lab, 150, f"converged after {node} healed") - t_heal
    jetstream_settled(lab)  # a master cannot start while the raft groups catch up
    restart = datetime.now(UTC)
    L.stop_master(lab)
    # the residue the edge rules once left, made by hand while no master runs
    for h in lab.net.nodes:
        haproxy_cmd(lab, h, "set server rabbitmq/ctl2 state maint")
    api = sorted(k for k in admin_states(lab, "ctl2") if k.startswith("be_") and "/ctl1" in k)
    for key in api:
        haproxy_cmd(lab, "ctl2", f"set server {key} state drain")
    assert len(_not_desired(lab)) >= 3 + len(api), "the residue is there"
    t0 = time.monotonic()
    mark = len((lab.dir / "master.log").read_text())
    try:
        L.start_master(lab, "master")
    except Exception as exc:
        tail = (lab.dir / "master.log").read_text()[mark:][-3000:]
        raise AssertionError(f"master restart: {exc}\n{tail}") from None
    t_started = time.monotonic() - t0
    converged_s = _converge(lab, 30 + t_started, "desired state after the master restart") - t0
    trail = asyncio.run(stored_events(lab, "hactl/reactor/>", since))
    lost = asyncio.run(stored_events(lab, "hactl/minion/*/lost", since))
    # a lost verdict only about a node that was cut, and about the silence of its cut: last
    # heard less than lost_after (10 s) before the cut (else it was silent before it), and
    # before it was healed
    for e in lost:
        node = e.tag.split("/")[2]
        t_cut, t_healed = (t.timestamp() for t in cut_at[node])
        seen = float(e.data["last_seen"])
        assert t_cut - 10 < seen <= t_healed, f"{node} lost: {e.data} (cut {t_cut}-{t_healed})"
    after = [e for e in trail if e.ts >= restart.timestamp()]
    fixes = [e for e in after if e.tag == "hactl/reactor/reconcile/done"]
    out = [e for e in fixes if e.data.get("to") != "ready"]
    taken_out = [e.data["key"] for e in out]
    # each with the fact the reconciler acted on and the event behind it (none: the fact came
    # from the stored view): a yield after the restart is right for a real split, wrong on a
    # stale view -- what the one CI-like failure (fresh clone 12, 2026-12-07) could not tell
    evidence = [str(e.data)[:400] for e in out[:3]]
    assert taken_out == [], f"taken out after the restart: {taken_out}; {evidence}"
    fixed = {e.data["key"] for e in fixes}
    assert {f"{h}:rabbitmq/ctl2" for h in lab.net.nodes} <= fixed
    assert {f"ctl2:{k}" for k in api} <= fixed
    beacons = asyncio.run(stored_events(lab, "hactl/beacon/>", since))
    # rule runs that changed the cluster (sent commands; an alert only reports)
    ran = [
        e
        for e in trail
        if e.tag.endswith("/done")
        and e.data.get("rule") != "reconcile"
        and any(
            k in r for r in e.data.get("results") or [] for k in ("calls", "node", "bootstrapped")
        )
    ]
    fired = {
        (e.data.get("rule"), e.data.get("event_id")): e.ts
        for e in trail
        if e.tag.endswith("/fired")
    }
    runs = [(e, fired.get((e.data.get("rule"), e.data.get("event_id")), e.ts)) for e in ran]
    fields = {r.name: r.trigger_fields for r in load_rules(L.rules_dir(lab), REGISTRY)}
    verdicts = [_stale(e, t, beacons, fields.get(e.data["rule"], frozenset())) for e, t in runs]
    assert verdicts == [""] * len(ran)
    stale = [e for e in trail if e.data.get("reason") == "stale"]
    out_fixes = [e for e in trail if e.tag == "hactl/reactor/reconcile/done"]
    report(
        "convergence: two nodes cut 14 s each and healed, converged after "
        + ", ".join(f"{n} {s:.1f} s" for n, s in healed_s.items())
        + f"; hand-made residue ({3 + len(api)} servers) + master restart: every server in its"
        f" desired state {converged_s:.1f} s after the restart began (master up in "
        f"{t_started:.1f} s); {len(out_fixes)} corrections in all, {len(stale)} stale decisions"
        f" dropped, lost verdicts: {sorted({e.tag.split('/')[2] for e in lost}) or 'none'}"
    )
