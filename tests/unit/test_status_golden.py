"""``hactl status`` at 80x24, golden files (tests/unit/golden/status/<case>.txt): a healthy
view, a fault, maintenance, a pending approval -- what an operator sees over SSH during an
incident. Regenerate with ``HACTL_UPDATE_GOLDEN=1 pytest tests/unit/test_status_golden.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from hactl.cli import status_compact as st
from hactl.cli.status_compact import render
from hactl.master.reactor.view.cluster import ClusterView
from hactl.wire.approvals import Approval
from hactl.wire.envelope import new_event
from hactl.wire.maint import Maintenance
from tests.unit.test_reconciler import admin, ev, healthy_view, vrrp

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "status"
NOW = 1_796_000_000.0


def _screen(view: ClusterView, windows: list[Maintenance], asks: list[Approval]) -> str:
    console = Console(record=True, width=80, height=24, color_system=None)
    singles = [{"name": "nova-scheduler", "holder": "ctl2"}]
    render(console, view.facts(), windows, [], asks, singles)
    return console.export_text()


def _fault() -> ClusterView:
    view = healthy_view()
    view.update(vrrp("ctl1", "MASTER", 150))
    items = dict(view.nodes["ctl1"]["haproxy"])
    items["galera/ctl2"] = {**items["galera/ctl2"], "status": "MAINT"}
    view.update(ev("ctl1", "haproxy", items))
    admin(view, "ctl1", "galera", "ctl2", "maint")
    view.update(ev("ctl2", "galera", {"local": {"running": False, "synced": False}}))
    return view


ASK = Approval(
    "01M8QG040F9HSACTTQYQ43CK07",
    "galera-cluster-down",
    "galera",
    "01M8QG040F9HSACTTQYQ43CK00",
    "hactl/beacon/ctl1/galera",
    "Galera has no Primary component. Bootstrap ctl1 from u:9 although ctl3 cannot be reached?",
    {"would": {"node": "ctl1"}},
    NOW - 30,
    NOW + 570,
)


def _no_haproxy_report() -> ClusterView:
    view = healthy_view()
    for node in view.nodes.values():
        node.pop("haproxy", None)
    return view


def _one_haproxy_silent() -> ClusterView:
    view = healthy_view()
    view.nodes["ctl3"].pop("haproxy", None)
    return view


def _stale_minion() -> ClusterView:
    view = healthy_view()
    view.update(new_event("hactl/minion/ctl2/lost", "master", {"last_seen": 1.0}), 2.0)
    return view


CASES = {
    "healthy": lambda: (healthy_view(), [], []),
    "fault": lambda: (_fault(), [], []),
    "maintenance": lambda: (
        healthy_view(),
        [Maintenance("ctl2", "galera", "disk swap", "UKEY", NOW - 60, NOW + 3600)],
        [],
    ),
    "approval": lambda: (_fault(), [], [ASK]),
    # no evidence, no all-clear (issue 26)
    "no-haproxy-report": lambda: (_no_haproxy_report(), [], []),
    "one-haproxy-silent": lambda: (_one_haproxy_silent(), [], []),
    "stale-minion": lambda: (_stale_minion(), [], []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_status_screen(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hactl status --compact`` / ``--watch`` at 80 columns matches its golden file and
    fits an 80x24 terminal."""
    monkeypatch.setattr(st.time, "time", lambda: NOW)
    view, windows, asks = CASES[case]()
    for node in view.nodes.values():  # heard "just now" on the frozen clock
        if isinstance(node.get("minion"), dict):
            node["minion"]["last_seen"] = NOW - 1
            node["minion"]["skewed"] = False
    text = _screen(view, windows, asks)
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("HACTL_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert len(text.splitlines()) <= 23, "more than one screen (and the watch's footer line)"


NO_EVIDENCE = ("healthy", "no-haproxy-report", "one-haproxy-silent", "stale-minion")


@pytest.mark.parametrize("full", [False, True], ids=["default", "full"])
@pytest.mark.parametrize("case", NO_EVIDENCE)
def test_status_tables_never_say_all_clear_without_evidence(
    case: str, full: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hactl status`` and ``--full`` (golden files ``default-<case>``/``full-<case>``): with
    no HAProxy report, one silent or one stale, the backends table says so under it."""
    from hactl.cli import status as cli_status

    monkeypatch.setattr(st.time, "time", lambda: NOW)
    monkeypatch.setattr(cli_status.time, "time", lambda: NOW)
    view, _, _ = CASES[case]()
    for node in view.nodes.values():
        if isinstance(node.get("minion"), dict):
            node["minion"]["last_seen"] = NOW - 1
            node["minion"]["skewed"] = False
    console = Console(record=True, width=100, color_system=None)
    facts = view.facts()
    cli_status._tables(console, facts, full)
    text = console.export_text()
    golden = GOLDEN / f"{'full' if full else 'default'}-{case}.txt"
    if os.environ.get("HACTL_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
    lack = st.missing(facts["nodes"])
    assert (lack in text) if lack else ("no report" not in text and "unknown" not in text)


def test_status_json_names_whose_haproxy_spoke() -> None:
    """``hactl status --json`` carries the evidence: reported, silent, stale."""
    assert st.evidence(_one_haproxy_silent().nodes) == {
        "reported": ["ctl1", "ctl2"],
        "silent": ["ctl3"],
        "stale": [],
    }
    assert st.evidence(_no_haproxy_report().nodes)["reported"] == []
    assert st.evidence(_stale_minion().nodes)["stale"] == ["ctl2"]
