"""The cluster view is typed at its boundary: a malformed beacon value never enters it, from
an event or from KV, so it cannot poison the facts of every later event (the `vips: [[1]]`
regression of the Trust II issue)."""

from __future__ import annotations

from typing import Any

import pytest

from hactl.master.reactor.view.cluster import ClusterView, admissible
from hactl.wire.envelope import new_event

GOOD_VRRP = {"VI_1": {"state": "MASTER", "priority": 150, "vips": ["10.0.0.10"], "vip_here": True}}


def _vrrp(node: str, items: Any) -> Any:
    return new_event(f"hactl/beacon/{node}/vrrp", node, {"items": items})


def test_the_vips_poison_is_refused_and_facts_still_compute() -> None:
    """vips: [[1]] made facts() raise on every later event; now it is refused and counted."""
    view = ClusterView()
    assert view.update(_vrrp("ctl1", GOOD_VRRP)) == [("ctl1", "vrrp")]
    poison = {"VI_1": {"state": "MASTER", "priority": 150, "vips": [[1]], "vip_here": True}}
    assert view.update(_vrrp("ctl2", poison)) == []
    assert view.rejected == {"vrrp": 1}
    assert view.facts()["vips"] == {"10.0.0.10": ["ctl1"]}
    assert view.update(_vrrp("ctl3", GOOD_VRRP)) == [("ctl3", "vrrp")]  # later events fine
    assert view.facts()["split_brain"] == ["10.0.0.10"]


def test_a_poisoned_kv_value_is_ignored_across_a_restart() -> None:
    """A restarted master loading the bad value from KV refuses it the same way."""
    restarted = ClusterView()
    assert restarted.set("ctl2", "vrrp", {"VI_1": {"vips": [[1]]}}) is False
    assert restarted.set("ctl2", "galera", ["not", "a", "map"]) is False
    assert restarted.set("ctl2", "minion", {"last_seen": "yesterday"}) is False
    restarted.facts()  # nothing raises
    assert "ctl2" not in restarted.nodes


@pytest.mark.parametrize(
    ("aspect", "value"),
    [
        ("vrrp", {"VI_1": {"state": 3}}),
        ("vrrp", {"VI_1": {"priority": "high"}}),
        ("vrrp", {"VI_1": {"vip_here": "yes"}}),
        ("vrrp", {"VI_1": ["MASTER"]}),
        ("galera", {"local": {"running": "yes"}}),
        ("galera", {"local": {"cluster_status": 1}}),
        ("rabbitmq", {"local": 5}),
        ("haproxy", "up"),
        ("minion", {"lost": 1}),
        ("vrrp", {1: {}}),
        ("vrrp", {"VI_1": {"state": "MASTER", "shell": "id"}}),
        ("haproxy", {f"be/s{i}": {"status": "UP"} for i in range(5000)}),
        ("service", {"x" * 300: {"up": True}}),
        ("service", {"keystone": {"detail": "x" * 5000}}),
        ("rabbitmq", {"local": {"members": ["a"] * 300}}),
        ("galera", {"_made_up": {"error": "x"}}),
        ("minion", {"last_seen": 1.0, "extra": {"deep": [1]}}),
    ],
)
def test_malformed_values_are_refused_with_a_reason(aspect: str, value: Any) -> None:
    """Wrong types, unknown fields, too many items, over-long names and strings are refused
    with the aspect named first."""
    assert admissible(aspect, value).startswith(aspect)


def test_well_formed_values_pass() -> None:
    """The beacons' real shapes are admissible (status entries starting with _ are skipped)."""
    assert admissible("vrrp", GOOD_VRRP) == ""
    assert (
        admissible(
            "galera", {"local": {"running": True, "synced": True, "cluster_status": "Primary"}}
        )
        == ""
    )
    assert admissible("haproxy", {"_haproxy": {"running": False}, "be/x": {"status": "UP"}}) == ""
    assert admissible("minion", {"last_seen": 1.5, "lost": False}) == ""


def test_a_replayed_event_is_taken_once_whatever_its_age() -> None:
    """Trust III: a node's stored event published again (same id, stored anew, so a fresh
    stream time) does not change the view back: an event is folded in once, by id."""
    view = ClusterView()
    down = _vrrp("ctl2", {"VI_1": {**GOOD_VRRP["VI_1"], "state": "BACKUP", "vip_here": False}})
    up = _vrrp("ctl2", GOOD_VRRP)
    assert view.update(down, now=100.0) == [("ctl2", "vrrp")]
    assert view.update(up, now=200.0) == [("ctl2", "vrrp")]
    assert view.update(down, now=900.0) == []  # the replay, 800 s later
    assert view.nodes["ctl2"]["vrrp"] == GOOD_VRRP
    assert view.rejected == {"replayed": 1}
