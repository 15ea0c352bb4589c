"""Rolling apply: batches in order, the gate between them, the first failure stops it."""

from __future__ import annotations

from typing import Any

import pytest

from hactl.master.rolling import GateError, batches, default_gate, expression_gate, roll
from tests.support.keystone_keys import ENV as KEYSTONE_ENV
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


def test_states_that_must_roll_are_split_out_of_a_plain_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shipped tree: rabbitmq declares roll.yaml (batch 1, its own gate); a plain apply
    keeps every other state in the all-at-once plans and moves rabbitmq's resources -- and
    only those -- into the rolling plans."""
    from pathlib import Path

    from hactl.master.rolling import split_rolling
    from hactl.master.states.compile import compile_tree
    from hactl.master.states.tree import load_tree

    for var in ("HAPROXY_STATS", "RABBITMQ_MONITOR", "RABBITMQ_OPENSTACK"):
        monkeypatch.setenv(f"HACTL_{var}_PASSWORD", "test-only")
    monkeypatch.setenv("HACTL_RABBITMQ_COOKIE", "test-only-cookie")
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HACTL_HAPROXY_EXTERNAL_PEM", _test_pem())
    tree = load_tree(Path(__file__).resolve().parents[2] / "states")
    assert tree.rolling == {"keystone": 1, "rabbitmq": 1}
    assert "batch.rabbitmq_running" in tree.roll_gates["rabbitmq"]
    plans = compile_tree(tree, sorted(tree.nodes))
    now, later, batch = split_rolling(plans, tree.rolling)
    assert batch == 1 and set(later) == set(plans)
    assert {r.state for p in later.values() for r in p.resources} == {"keystone", "rabbitmq"}
    assert not any(r.state in tree.rolling for p in now.values() for r in p.resources)
    total = sum(len(p.resources) for p in plans.values())
    assert total == sum(len(p.resources) for d in (now, later) for p in d.values())


def test_a_bad_roll_yaml_is_refused_with_its_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """roll.yaml: {batch: N >= 1, gate: EXPR}; anything else names the file."""
    import shutil
    from pathlib import Path

    from hactl.errors import HactlError
    from hactl.master.states.tree import load_tree

    root = tmp_path / "states"
    shutil.copytree(Path(__file__).resolve().parents[2] / "states", root)
    (root / "rabbitmq" / "roll.yaml").write_text("batch: 0\n")
    monkeypatch.setenv("HACTL_RABBITMQ_COOKIE", "test-only-cookie")
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HACTL_HAPROXY_EXTERNAL_PEM", _test_pem())
    for var in ("HAPROXY_STATS", "RABBITMQ_MONITOR", "RABBITMQ_OPENSTACK"):
        monkeypatch.setenv(f"HACTL_{var}_PASSWORD", "test-only")
    with pytest.raises(HactlError, match=r"roll\.yaml"):
        load_tree(root)


async def test_a_batch_that_disturbed_no_service_is_not_waited_for() -> None:
    """A declared roll where nothing was started, restarted or reloaded (an unchanged config,
    a first deployment without services) applies every batch without consulting the gate."""
    applied: list[list[str]] = []

    async def apply_batch(group: list[str]) -> bool:
        applied.append(group)
        return True

    async def facts() -> dict[str, Any]:
        raise AssertionError("the gate was consulted")

    stop = await roll(
        ["ctl1", "ctl2", "ctl3"],
        1,
        apply_batch,
        facts,
        lambda f: "never",
        1.0,
        disturbed=lambda g: False,
    )
    assert stop is None and applied == [["ctl1"], ["ctl2"], ["ctl3"]]


def test_a_gate_can_ask_about_the_batch_just_applied() -> None:
    """batch.rabbitmq_running: every node of the batch runs its broker (the others may not
    have been started yet: a first deployment)."""
    from hactl.master.rolling import batch_facts

    view = healthy_view()
    facts = view.facts()
    gate = expression_gate("batch.rabbitmq_running and not cluster.lost")
    assert gate({**facts, "batch": batch_facts(facts, ["ctl1"])}) == ""
    view.update(ev("ctl1", "rabbitmq", {"local": {"running": False}}))
    facts = view.facts()
    assert "is false" in gate({**facts, "batch": batch_facts(facts, ["ctl1"])})
    assert gate({**facts, "batch": batch_facts(facts, ["ctl2"])}) == ""


def _test_pem() -> str:
    from pathlib import Path

    return (Path(__file__).parent / "golden" / "external-tls.pem").read_text(encoding="utf-8")


def test_a_declared_roll_waits_only_for_the_gates_of_the_states_it_touched() -> None:
    """A batch that started Keystone waits for Keystone's gate, not for RabbitMQ's (brokers a
    first deployment has not started); a minion that failed or did not answer: every gate."""
    from hactl.master.apply import MinionResult
    from hactl.master.rolling import disturbed_states, state_gates

    started = {"state": "keystone", "changes": {"start": "keystone"}}
    written = {"state": "rabbitmq", "changes": {"diff": "..."}}
    ok = [MinionResult("ctl1", "ok", (started, written))]
    assert disturbed_states(ok, ["ctl1"]) == {"keystone"}
    assert disturbed_states([MinionResult("ctl1", "no_answer")], ["ctl1"]) == {"*"}
    assert disturbed_states(ok, ["ctl2"]) == set()
    last = {"keystone"}
    gates = {"keystone": lambda f: "", "rabbitmq": lambda f: "brokers not running"}
    check = state_gates(gates, lambda: last)
    assert check({}) == ""
    last.add("*")
    assert check({}) == "rabbitmq: brokers not running"
