"""Rolling apply: batches in order, the gate between them, the first failure stops it."""

from __future__ import annotations

from typing import Any

import pytest

from hactl.master.rolling import GateError, batches, default_gate, expression_gate, roll
from tests.unit.test_reconciler import ev, healthy_view


def test_batches_are_stable_and_sized() -> None:
    """Sorted nodes, N at a time; 0 means all at once."""
    assert batches(["c", "a", "b"], 1) == [["a"], ["b"], ["c"]]
    assert batches(["c", "a", "b"], 2) == [["a", "b"], ["c"]]
    assert batches(["c", "a", "b"], 0) == [["a", "b", "c"]]


def test_default_gate_names_the_first_problem() -> None:
    """Healthy: ''; a server not UP or a desynced Galera member is named."""
    view = healthy_view()
    assert default_gate(view.facts()) == ""
    view.update(ev("ctl2", "galera", {"local": {"running": True, "synced": False}}))
    assert default_gate(view.facts()) == "Galera not Synced on ctl2"


def test_expression_gate_and_its_errors() -> None:
    """A rule-style expression over cluster; a syntax error is a GateError before anything."""
    gate = expression_gate("cluster.galera.synced | length == 3")
    view = healthy_view()
    assert gate(view.facts()) == ""
    view.update(ev("ctl3", "galera", {"local": {"running": True, "synced": False}}))
    assert "is false" in gate(view.facts())
    with pytest.raises(GateError):
        expression_gate("cluster.galera.synced ==")


async def test_roll_waits_for_the_gate_and_stops_on_failure() -> None:
    """Batch 2 starts only once the gate holds; a failed batch stops the roll there; a gate
    that never holds stops it after the wait, naming why."""
    applied: list[list[str]] = []
    health = iter(["ctl1 still syncing", "", ""])

    async def apply_batch(group: list[str]) -> bool:
        applied.append(group)
        return group != ["ctl3"]

    async def facts() -> dict[str, Any]:
        return {"nodes": {n: {"minion": {"last_seen": 1.0}} for n in ("ctl1", "ctl2", "ctl3")}}

    stop = await roll(
        ["ctl3", "ctl1", "ctl2"], 1, apply_batch, facts, lambda _f: next(health), wait=5, poll=0.01
    )
    assert applied == [["ctl1"], ["ctl2"], ["ctl3"]]
    assert stop is not None and stop.batch == 3 and "failed" in stop.why
    applied.clear()
    stop = await roll(
        ["ctl1", "ctl2"],
        1,
        apply_batch,
        facts,
        lambda _f: "galera/ctl1 is DOWN on ctl2",
        wait=0.05,
        poll=0.01,
    )
    assert applied == [["ctl1"]] and stop is not None
    assert stop.why.startswith("the gate did not hold within 0.05 s: galera/ctl1 is DOWN")

    async def nothing() -> dict[str, Any]:
        return {}

    applied.clear()
    stop = await roll(
        ["ctl1", "ctl2"], 1, apply_batch, nothing, lambda _f: "", wait=0.05, poll=0.01
    )
    assert stop is not None and "no view of ctl1" in stop.why  # silence is not health
