"""Golden rule cases (pyinfra's operation tests for rules): one file per case in
tests/unit/golden/rules/ with a view, an event and the expected decisions and minion requests,
run against the shipped rules on the in-memory bus. Every shipped rule has a positive and a
negative case (checked below). Debounces are set to 0 here: the damping is tested apart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hactl.master.reactor.rules.engine import Engine
from hactl.wire.envelope import new_event
from hactl.wire.maint import Maintenance
from tests.support.membus import MemBus
from tests.unit.test_reactor_engine import RULES

CASES = Path(__file__).parent / "golden" / "rules"
BASE: dict[str, dict[str, Any]] = yaml.safe_load((CASES / "_base.yaml").read_text())
FILES = sorted(p for p in CASES.glob("*.yaml") if not p.name.startswith("_"))


def _event(spec: dict[str, Any]) -> Any:
    tag = spec["tag"]
    node = tag.split("/")[2]
    data = spec.get("data") or {
        "items": spec.get("items", {}),
        "changes": spec.get("changes", []),
        "resync": not spec.get("changes"),
    }
    return new_event(tag, spec.get("minion", node), data)


def _minion(answers: dict[str, Any]) -> Any:
    def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        if cmd in answers:
            return dict(answers[cmd])
        return {"result": True, "comment": "Synced" if cmd.startswith("galera.") else "done"}

    return handler


async def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Decisions, requests, leases and published tags of one case."""
    bus = MemBus()
    rules = [dataclasses.replace(r, debounce=0.0) for r in RULES]
    eng = Engine(rules, bus)
    eng.maintenance = [Maintenance(**m) for m in case.get("maintenance") or []]
    view = {n: dict(a) for n, a in BASE.items()}
    for node, aspects in (case.get("view") or {}).items():
        view.setdefault(node, {}).update(aspects)
    for node, aspects in view.items():
        bus.minions[node] = _minion((case.get("minions") or {}).get(node, {}))
        for aspect, value in aspects.items():
            assert eng.view.set(node, aspect, value), (node, aspect, eng.view.last_rejection)
    for spec in case.get("before") or []:
        await eng.handle(_event(spec))
        await eng.idle()
    bus.requests.clear()
    bus.published.clear()
    await eng.handle(_event(case["event"]))
    await eng.idle()
    return {
        "decisions": sorted(e.tag.split("/", 2)[2] for e in bus.audit()),
        "requests": sorted(json.dumps([t, c, a], sort_keys=True) for t, c, a in bus.requests),
        # bootstrap leases taken (and whether still held: a finished recovery gives it back)
        "leases": sorted(
            n + ("" if n in bus.leases else " (released)")
            for n in bus.lease_values
            if n.startswith("galera-bootstrap.")
        ),
        "published": sorted(
            {e.tag for e, _ in bus.published if not e.tag.startswith("hactl/reactor/")}
        ),
        "data": {e.tag: dict(e.data) for e, _ in bus.published},
        "errors": [str(e.data.get("error")) for e in bus.audit("failed")],
    }


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_rule_case(path: Path) -> None:
    """The case's decisions and minion requests are exactly what the shipped rules produce."""
    case = yaml.safe_load(path.read_text())
    got = asyncio.run(run_case(case))
    assert got["decisions"] == sorted(case.get("decisions") or []), got
    want = sorted(json.dumps(r, sort_keys=True) for r in case.get("requests") or [])
    assert got["requests"] == want, got["requests"]
    assert got["leases"] == sorted(case.get("leases") or []), got
    assert set(case.get("published") or []) <= set(got["published"]), got
    for tag, want_data in (case.get("published_data") or {}).items():
        assert {k: got["data"][tag].get(k) for k in want_data} == want_data, got["data"][tag]
    if "error" in case:  # a failed decision says why
        assert any(case["error"] in e for e in got["errors"]), got["errors"]


def test_every_shipped_rule_has_a_positive_and_a_negative_case() -> None:
    """A rule that fires in some case (positive), and a case on its trigger where it does not."""
    fired = {d.split("/")[0] for p in FILES for d in yaml.safe_load(p.read_text())["decisions"]}
    negative = {p.stem for p in FILES if p.stem.endswith("-no")}
    for rule in RULES:
        assert rule.name in fired, f"{rule.name}: no positive golden case"
        family = {n for n in negative if n.startswith(rule.name.rsplit("-", 1)[0])}
        assert family, f"{rule.name}: no negative golden case"
