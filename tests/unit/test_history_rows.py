"""Rows of `hactl history` and nodes of `hactl why`, from stored decision events (pure)."""

from __future__ import annotations

import pytest

from hactl.cli.history import row
from hactl.cli.why import chain
from hactl.wire.envelope import new_event

pytestmark = pytest.mark.unit


def test_a_rule_decision_row_has_its_lag_and_its_actions_time() -> None:
    """A rule's `done` sums its actions' ms; `after` is the time since its triggering event."""
    trigger = new_event("hactl/beacon/ctl2/galera", "ctl2", {"items": {}})
    done = new_event(
        "hactl/reactor/galera-node-rejoin/done",
        "master",
        {
            "rule": "galera-node-rejoin",
            "event_id": trigger.id,
            "event_tag": trigger.tag,
            "event_ts": trigger.ts - 1.5,
            "results": [{"action": "a", "ms": 10.0}, {"action": "b", "ms": 2.5}, {"x": True}],
        },
    )
    r = row(done)
    assert (r["rule"], r["outcome"], r["about"]) == ("galera-node-rejoin", "done", "ctl2")
    assert r["took_ms"] == 12.5 and r["after_s"] is not None and 1.4 < r["after_s"] < 1.6
    assert r["detail"] == "a, b, None"


def test_a_pending_or_suppressed_row_has_no_duration_and_bad_times_are_ignored() -> None:
    """Nothing ran: no `took`; a trigger time that is not a number (or in the future) is no lag."""
    for ts in ("yesterday", True, 9e18):
        r = row(
            new_event(
                "hactl/reactor/x/suppressed",
                "master",
                {"rule": "x", "reason": "cooldown", "detail": "30s", "event_ts": ts},
            )
        )
        assert r["took_ms"] is None and r["after_s"] is None and r["detail"] == "cooldown: 30s"


def test_why_puts_the_reconcilers_drains_under_the_vrrp_event_that_caused_them() -> None:
    """A reconcile correction naming a vrrp event is a decision of that event in the chain,
    with its key (HAProxy:backend/server) and call time."""
    vrrp = new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"items": {}})
    drains = [
        new_event(
            "hactl/reactor/reconcile/done",
            "master",
            {
                "rule": "reconcile",
                "event_id": vrrp.id,
                "event_tag": vrrp.tag,
                "event_ts": vrrp.ts,
                "key": f"{h}:be_nova_api/ctl1",
                "from": "ready",
                "to": "drain",
                "fact": "ctl1: keepalived unhealthy",
                "ms": 3.2,
            },
        )
        for h in ("ctl1", "ctl2", "ctl3")
    ]
    other = new_event("hactl/reactor/reconcile/done", "master", {"rule": "reconcile", "ms": 1})
    tree = chain([vrrp, *drains, other], vrrp.id)
    assert [d["about"] for d in tree["decisions"]] == [
        "ctl1:be_nova_api/ctl1",
        "ctl2:be_nova_api/ctl1",
        "ctl3:be_nova_api/ctl1",
    ]
    assert all(
        d["took_ms"] == 3.2 and d["detail"].startswith("ready -> drain") for d in tree["decisions"]
    )
